/* The front end's settings by name: torchaudio's MelSpectrogram argument names read from text
 * (request fields, command-line flags) into a struct audio_mel_config. Only the types are
 * checked here; audio_mel_new checks the ranges. */
#include "audio/audio.h"

#include <float.h>
#include <limits.h>
#include <string.h>

#include "core/parse.h"

const char *const audio_mel_settings[] = {
    "sample_rate", "n_fft",     "win_length", "hop_length", "n_mels",     "f_min", "f_max",
    "power",       "mel_scale", "norm",       "center",     "log_offset", NULL,
};

/* Index of text in the NULL-terminated names, or -1. */
static int parse_choice(const char *text, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(text, names[i]) == 0) return i;
    return -1;
}

/* The int setting called name, or NULL when it is of another type. */
static int *int_setting(struct audio_mel_config *cfg, const char *name)
{
    return strcmp(name, "sample_rate") == 0  ? &cfg->sample_rate
           : strcmp(name, "n_fft") == 0      ? &cfg->n_fft
           : strcmp(name, "win_length") == 0 ? &cfg->win_length
           : strcmp(name, "hop_length") == 0 ? &cfg->hop_length
           : strcmp(name, "n_mels") == 0     ? &cfg->n_mels
           : strcmp(name, "power") == 0      ? &cfg->power
                                             : NULL;
}

/* The real setting called name, or NULL when it is of another type. */
static double *real_setting(struct audio_mel_config *cfg, const char *name)
{
    return strcmp(name, "f_min") == 0        ? &cfg->f_min
           : strcmp(name, "f_max") == 0      ? &cfg->f_max
           : strcmp(name, "log_offset") == 0 ? &cfg->log_offset
                                             : NULL;
}

/* The settings that name one of a few words: mel_scale, norm and center. */
static int parse_word_setting(struct audio_mel_config *cfg, const char *name, const char *text,
                              struct eng_error *err)
{
    static const char *const scales[] = {"htk", "slaney", NULL};
    static const char *const norms[] = {"none", "slaney", NULL};
    static const char *const flags[] = {"false", "true", NULL};
    int choice;
    if (strcmp(name, "mel_scale") == 0) {
        if ((choice = parse_choice(text, scales)) >= 0) return cfg->mel_scale = choice, 0;
        return eng_fail(err, ENG_INVALID, "mel_scale: must be htk or slaney");
    }
    if (strcmp(name, "norm") == 0) {
        if ((choice = parse_choice(text, norms)) >= 0) return cfg->norm = choice, 0;
        return eng_fail(err, ENG_INVALID, "norm: must be none or slaney");
    }
    if (strcmp(name, "center") == 0) {
        if ((choice = parse_choice(text, flags)) >= 0) return cfg->center = choice, 0;
        return eng_fail(err, ENG_INVALID, "center: must be true or false");
    }
    return eng_fail(err, ENG_INVALID, "%s: not a setting of the mel front end", name);
}

struct audio_mel_config audio_mel_settings_start(void)
{
    struct audio_mel_config cfg = audio_mel_defaults();
    cfg.win_length = 0; /* unset: follows n_fft */
    return cfg;
}

int audio_mel_setting_parse(struct audio_mel_config *cfg, const char *name, const char *text,
                            struct eng_error *err)
{
    int *whole = int_setting(cfg, name);
    double *real = real_setting(cfg, name);
    unsigned long long value;
    if (whole) {
        if (parse_whole(text, 0, INT_MAX, &value) != PARSE_OK)
            return eng_fail(err, ENG_INVALID, "%s: must be a whole number", name);
        *whole = (int)value;
        return 0;
    }
    if (real) {
        if (parse_real(text, -DBL_MAX, DBL_MAX, real) != PARSE_OK)
            return eng_fail(err, ENG_INVALID, "%s: must be a number", name);
        return 0;
    }
    return parse_word_setting(cfg, name, text, err);
}

void audio_mel_settings_resolve(struct audio_mel_config *cfg)
{
    if (cfg->win_length == 0) cfg->win_length = cfg->n_fft;
}
