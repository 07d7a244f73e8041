#include "audio/audio.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mpg123.h>
#include <opusfile.h>
#include <sndfile.h>
#include <soxr.h>
/* vorbisfile.h otherwise defines stdio callbacks this file does not use. */
#define OV_EXCLUDE_STATIC_CALLBACKS
#include <vorbis/vorbisfile.h>

#include "audio/ogg_probe.h"

/* Samples (not frames) decoded at a time: bounded memory whatever the channel count (libsndfile
 * allows up to 1024, Vorbis and Opus 255). */
#define CHUNK_SAMPLES 65536

/* audio_resample_ratio's bounds: a speed change of 100x either way. */
#define MIN_RATIO 0.01
#define MAX_RATIO 100.0

static const char ACCEPTED[] = "send WAV, FLAC, Ogg (Vorbis, Opus), MP3 or AIFF";

struct audio *audio_new(size_t length, int rate, struct eng_error *err)
{
    struct audio *a = calloc(1, sizeof *a);
    if (!a || length > SIZE_MAX / sizeof(float)) goto oom;
    a->samples = malloc((length ? length : 1) * sizeof(float));
    if (!a->samples) goto oom;
    a->length = length;
    a->rate = rate;
    return a;
oom:
    free(a);
    eng_fail(err, ENG_NO_MEMORY, "out of memory for a clip of %zu samples", length);
    return NULL;
}

void audio_free(struct audio *a)
{
    if (!a) return;
    free(a->samples);
    free(a);
}

struct audio_spec *audio_spec_new(int frames, int bins, struct eng_error *err)
{
    if (frames < 0 || bins < 0) {
        eng_fail(err, ENG_INVALID, "a spectrogram of %d x %d", frames, bins);
        return NULL;
    }
    struct audio_spec *s = calloc(1, sizeof *s);
    size_t n = (size_t)frames * (size_t)bins;
    if (!s) goto oom;
    s->data = malloc((n ? n : 1) * sizeof(float));
    if (!s->data) goto oom;
    s->frames = frames;
    s->bins = bins;
    return s;
oom:
    free(s);
    eng_fail(err, ENG_NO_MEMORY, "out of memory for a %d x %d spectrogram", frames, bins);
    return NULL;
}

void audio_spec_free(struct audio_spec *s)
{
    if (!s) return;
    free(s->data);
    free(s);
}

static int check_rate(const char *what, double rate, struct eng_error *err)
{
    if (rate >= AUDIO_MIN_RATE && rate <= AUDIO_MAX_RATE) return 0;
    return eng_fail(err, ENG_INVALID, "%s is %g Hz; it must be in [%d, %d]", what, rate,
                    AUDIO_MIN_RATE, AUDIO_MAX_RATE);
}

/* Index of the first NaN or infinite sample, or n when there is none. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

void audio_mixdown(const float *in, size_t frames, int channels, float *out)
{
    if (channels == 1) {
        memmove(out, in, frames * sizeof(float));
        return;
    }
    float scale = 1.0f / (float)channels;
    for (size_t f = 0; f < frames; f++) {
        const float *frame = in + f * (size_t)channels;
        float sum = 0;
        for (int c = 0; c < channels; c++)
            sum += frame[c];
        out[f] = sum * scale;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* A resampling sink: mono input pushed in pieces, the output collected into a growing buffer.
 * Without a resampler (equal rates) it copies. Decoding and audio_resample share it, so a long
 * upload is resampled as it is decoded and never held at its source rate.                    */

struct sink {
    soxr_t soxr; /* NULL when the rates match */
    double ratio;
    size_t in_length; /* samples pushed so far */
    float *out;
    size_t length, capacity;
};

static int sink_open(struct sink *s, double ratio, size_t expected_in, struct eng_error *err)
{
    *s = (struct sink){.ratio = ratio};
    if (ratio != 1.0) {
        soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
        soxr_error_t e = NULL;
        s->soxr = soxr_create(1.0, ratio, 1, &e, NULL, &quality, NULL);
        if (!s->soxr) return eng_fail(err, ENG_INTERNAL, "libsoxr: %s", soxr_strerror(e));
    }
    s->capacity = (size_t)ceil((double)expected_in * ratio) + 64;
    s->out = malloc(s->capacity * sizeof(float));
    if (!s->out) {
        soxr_delete(s->soxr);
        s->soxr = NULL;
        return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu samples", s->capacity);
    }
    return 0;
}

static void sink_close(struct sink *s)
{
    soxr_delete(s->soxr);
    free(s->out);
    *s = (struct sink){0};
}

static int sink_reserve(struct sink *s, size_t more, struct eng_error *err)
{
    if (s->capacity - s->length >= more) return 0;
    size_t capacity = s->capacity * 2 > s->length + more ? s->capacity * 2 : s->length + more;
    float *out = realloc(s->out, capacity * sizeof(float));
    if (!out) return eng_fail(err, ENG_NO_MEMORY, "out of memory for %zu samples", capacity);
    s->out = out;
    s->capacity = capacity;
    return 0;
}

/* Pushes n samples; in == NULL flushes the resampler's tail. */
static int sink_push(struct sink *s, const float *in, size_t n, struct eng_error *err)
{
    if (!s->soxr) {
        if (!in) return 0;
        if (sink_reserve(s, n, err) != 0) return -1;
        memcpy(s->out + s->length, in, n * sizeof(float));
        s->length += n;
        s->in_length += n;
        return 0;
    }
    s->in_length += in ? n : 0;
    for (;;) {
        size_t want = (size_t)ceil((double)n * s->ratio) + 64;
        if (sink_reserve(s, want, err) != 0) return -1;
        size_t space = s->capacity - s->length, idone = 0, odone = 0;
        soxr_error_t e =
            soxr_process(s->soxr, in, in ? n : 0, &idone, s->out + s->length, space, &odone);
        if (e) return eng_fail(err, ENG_INTERNAL, "libsoxr: %s", soxr_strerror(e));
        s->length += odone;
        if (in) {
            in += idone;
            n -= idone;
            if (n == 0) return 0;
        } else if (odone < space) {
            return 0; /* the tail is out */
        }
    }
}

/* Ends the stream and hands its buffer to a clip of exactly round(in_length * ratio) samples:
 * libsoxr's output length depends on how the input was split, the documented length not. */
static struct audio *sink_finish(struct sink *s, int rate, struct eng_error *err)
{
    if (sink_push(s, NULL, 0, err) != 0) return NULL;
    size_t length = (size_t)llround((double)s->in_length * s->ratio);
    if (sink_reserve(s, length > s->length ? length - s->length : 0, err) != 0) return NULL;
    for (size_t i = s->length; i < length; i++)
        s->out[i] = 0;
    struct audio *a = calloc(1, sizeof *a);
    if (!a) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for a clip");
        return NULL;
    }
    a->samples = s->out;
    a->length = length;
    a->rate = rate;
    s->out = NULL;
    return a;
}

static struct audio *resample(const struct audio *a, double ratio, int rate, struct eng_error *err)
{
    struct sink s;
    if (sink_open(&s, ratio, a->length, err) != 0) return NULL;
    struct audio *out = NULL;
    if (sink_push(&s, a->samples, a->length, err) == 0) out = sink_finish(&s, rate, err);
    sink_close(&s);
    return out;
}

struct audio *audio_resample(const struct audio *a, int rate, struct eng_error *err)
{
    if (check_rate("the target rate", rate, err) != 0 ||
        check_rate("the clip's rate", a->rate, err) != 0)
        return NULL;
    return resample(a, (double)rate / a->rate, rate, err);
}

struct audio *audio_resample_ratio(const struct audio *a, double ratio, struct eng_error *err)
{
    if (!(ratio >= MIN_RATIO && ratio <= MAX_RATIO)) {
        eng_fail(err, ENG_INVALID, "the resampling ratio is %g; it must be in [%g, %g]", ratio,
                 MIN_RATIO, MAX_RATIO);
        return NULL;
    }
    return resample(a, ratio, a->rate, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Memory as a file, through libsndfile's virtual I/O (and the Vorbis and MPEG sources'
 * callbacks; libopusfile reads memory itself): a read-only view for decoding, a growing buffer
 * for encoding.                                                                              */

struct memfile {
    unsigned char *data;
    size_t size, capacity, pos;
    bool failed; /* a write ran out of memory */
};

static sf_count_t mem_length(void *user)
{
    return (sf_count_t)((struct memfile *)user)->size;
}

static sf_count_t mem_seek(sf_count_t offset, int whence, void *user)
{
    struct memfile *m = user;
    sf_count_t base = whence == SEEK_SET   ? 0
                      : whence == SEEK_CUR ? (sf_count_t)m->pos
                                           : (sf_count_t)m->size;
    if (offset < -base || offset > INT64_MAX - base) return -1;
    m->pos = (size_t)(base + offset);
    return (sf_count_t)m->pos;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *user)
{
    struct memfile *m = user;
    size_t left = m->pos < m->size ? m->size - m->pos : 0;
    size_t n = count < 0 ? 0 : (size_t)count < left ? (size_t)count : left;
    memcpy(ptr, m->data + m->pos, n);
    m->pos += n;
    return (sf_count_t)n;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user)
{
    struct memfile *m = user;
    size_t n = count < 0 ? 0 : (size_t)count;
    if (m->pos + n > m->capacity) {
        size_t capacity = m->capacity * 2 > m->pos + n ? m->capacity * 2 : m->pos + n + 4096;
        unsigned char *data = realloc(m->data, capacity);
        if (!data) {
            m->failed = true;
            return 0;
        }
        m->data = data;
        m->capacity = capacity;
    }
    if (m->pos > m->size) memset(m->data + m->size, 0, m->pos - m->size);
    memcpy(m->data + m->pos, ptr, n);
    m->pos += n;
    if (m->pos > m->size) m->size = m->pos;
    return (sf_count_t)n;
}

static sf_count_t mem_tell(void *user)
{
    return (sf_count_t)((struct memfile *)user)->pos;
}

static SF_VIRTUAL_IO mem_io = {mem_length, mem_seek, mem_read, mem_write, mem_tell};

/* libsndfile reports a failed open through process-wide state (sf_error(NULL)), so opening and
 * reading that state must not interleave with another thread's failed open. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* sf_open_virtual; on failure, err gets libsndfile's reason: an unknown format or encoding is
 * ENG_UNSUPPORTED, anything else (a malformed header) ENG_UNDECODABLE. */
static SNDFILE *open_virtual(struct memfile *m, int mode, SF_INFO *info, const char *what,
                             struct eng_error *err)
{
    pthread_mutex_lock(&open_lock);
    SNDFILE *snd = sf_open_virtual(&mem_io, mode, info, m);
    if (!snd) {
        int code = sf_error(NULL);
        bool unsupported =
            code == SF_ERR_UNRECOGNISED_FORMAT || code == SF_ERR_UNSUPPORTED_ENCODING;
        eng_fail(err, unsupported ? ENG_UNSUPPORTED : ENG_UNDECODABLE, "%s: %s", what,
                 sf_strerror(NULL));
    }
    pthread_mutex_unlock(&open_lock);
    return snd;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding sources: each reads the upload from memory through one library and hands out chunks
 * of samples; the decoder above them (limits, NaN check, mixdown, resampling) is the same for
 * every format. libsndfile reads WAV, AIFF and FLAC. Ogg never reaches it: through libsndfile
 * 1.2.0 a malformed Vorbis file leaks 5.7 KB on every failed open, and so does a crafted file
 * whose first page says Opus and whose next holds a Vorbis header, so the Ogg pages are read
 * first (ogg_probe.c) and pure Vorbis goes to libvorbisfile, pure Opus to libopusfile. MP3 goes
 * to libmpg123 directly, which libsndfile cannot keep from printing notes about damaged files
 * to stderr.                                                                                 */

struct source {
    int channels, rate;
    int64_t frames;     /* the header's count, or -1 when it does not say */
    bool mono;          /* read gives samples already averaged into one channel */
    const char *format; /* audio_info's names */
    const char *encoding;
    /* Reads up to max_frames frames into chunk (frames x channels interleaved samples, or
     * frames mono ones when mono). Returns the frames read, 0 at the end, or -1 with err set to
     * the library's reason. */
    long (*read)(struct source *s, float *chunk, size_t max_frames, struct eng_error *err);
    void (*close)(struct source *s);
    struct memfile mem; /* the upload, read-only; the libraries hold a pointer to it */
    union {
        SNDFILE *snd;
        OggVorbis_File ov;
        struct {
            OggOpusFile *file;         /* the link being read */
            const unsigned char *data; /* the Ogg data, after any ID3v2 tag */
            size_t size, end;          /* its length; where the link being read ends */
        } opus;
        mpg123_handle *mh;
    } lib;
    int link; /* Vorbis: the logical bitstream being read */
};

/* Fills s from its upload (s->mem), or returns -1 with err set having released what it took. */
typedef int (*source_open_fn)(struct source *s, struct eng_error *err);

/* libsndfile: WAV, AIFF, FLAC. ------------------------------------------------------------ */

static const char *format_name(int format)
{
    switch (format & SF_FORMAT_TYPEMASK) {
    case SF_FORMAT_WAV:
    case SF_FORMAT_WAVEX:
    case SF_FORMAT_RF64:
        return "wav";
    case SF_FORMAT_AIFF:
        return "aiff";
    case SF_FORMAT_FLAC:
        return "flac";
    default:
        return "other";
    }
}

static const char *encoding_name(int format)
{
    static const struct {
        int subtype;
        const char *name;
    } names[] = {
        {SF_FORMAT_PCM_S8, "pcm8"},   {SF_FORMAT_PCM_U8, "pcm8"},  {SF_FORMAT_PCM_16, "pcm16"},
        {SF_FORMAT_PCM_24, "pcm24"},  {SF_FORMAT_PCM_32, "pcm32"}, {SF_FORMAT_FLOAT, "float"},
        {SF_FORMAT_DOUBLE, "double"}, {SF_FORMAT_ULAW, "ulaw"},    {SF_FORMAT_ALAW, "alaw"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((format & SF_FORMAT_SUBMASK) == names[i].subtype) return names[i].name;
    return "other";
}

/* libsndfile divides integer samples by 2^(bits - 1), as torchaudio does, and passes float
 * samples through. */
static long sndfile_read(struct source *s, float *chunk, size_t max_frames, struct eng_error *err)
{
    sf_count_t got = sf_readf_float(s->lib.snd, chunk, (sf_count_t)max_frames);
    if (got > 0) return (long)got;
    if (sf_error(s->lib.snd) != SF_ERR_NO_ERROR)
        return eng_fail(err, ENG_UNDECODABLE, "%s", sf_strerror(s->lib.snd));
    return 0;
}

static void sndfile_close(struct source *s)
{
    sf_close(s->lib.snd);
}

static int sndfile_open(struct source *s, struct eng_error *err)
{
    SF_INFO info = {0};
    s->lib.snd = open_virtual(&s->mem, SFM_READ, &info, "the audio cannot be decoded", err);
    if (!s->lib.snd) return -1;
    s->channels = info.channels;
    s->rate = info.samplerate;
    /* libsndfile gives 0 or SF_COUNT_MAX when the format does not say. */
    s->frames = info.frames > 0 && info.frames != SF_COUNT_MAX ? info.frames : -1;
    s->format = format_name(info.format);
    s->encoding = encoding_name(info.format);
    s->read = sndfile_read;
    s->close = sndfile_close;
    return 0;
}

/* The bytes an ID3v2 tag at p takes (its 10-byte header, a size in 7-bit bytes, a footer when
 * flagged), 0 when there is none. */
static size_t id3v2_length(const unsigned char *p, size_t n)
{
    if (n < 10 || memcmp(p, "ID3", 3) != 0) return 0;
    size_t size = (size_t)(p[6] & 0x7f) << 21 | (size_t)(p[7] & 0x7f) << 14 |
                  (size_t)(p[8] & 0x7f) << 7 | (size_t)(p[9] & 0x7f);
    return 10 + size + (p[5] & 0x10 ? 10 : 0);
}

/* libvorbisfile: Ogg Vorbis. -------------------------------------------------------------- */

static size_t vorbis_io_read(void *ptr, size_t size, size_t count, void *user)
{
    if (size == 0 || count > INT64_MAX / size) return 0;
    return (size_t)mem_read(ptr, (sf_count_t)(size * count), user) / size;
}

static const char *vorbis_reason(int code)
{
    switch (code) {
    case OV_ENOTVORBIS:
        return "the Vorbis headers are truncated or damaged";
    case OV_EVERSION:
        return "unknown Vorbis version";
    case OV_EBADHEADER:
        return "invalid Vorbis header";
    case OV_EBADLINK:
        return "invalid link in a chained stream";
    default:
        return "damaged or truncated Ogg Vorbis data";
    }
}

/* A chained file may switch streams at any page: a change of layout would need a second
 * mixdown and resampler, so it is refused rather than decoded wrong. Read as a stream, ov_info
 * gives the link being decoded. */
static int vorbis_check_link(struct source *s, int link, struct eng_error *err)
{
    const vorbis_info *vi = ov_info(&s->lib.ov, link);
    if (vi->channels != s->channels || vi->rate != s->rate)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "a chained Ogg Vorbis stream changes from %d channels at %d Hz to %d at "
                        "%ld Hz; send each part on its own",
                        s->channels, s->rate, vi->channels, vi->rate);
    s->link = link;
    return 0;
}

/* Averages planar channels the way audio_mixdown averages interleaved ones, so both give the
 * same bits. */
static void mixdown_planar(float *const *in, size_t frames, int channels, float *out)
{
    float scale = 1.0f / (float)channels;
    for (size_t f = 0; f < frames; f++) {
        float sum = 0;
        for (int c = 0; c < channels; c++)
            sum += in[c][f];
        out[f] = channels == 1 ? in[0][f] : sum * scale;
    }
}

static long vorbis_read(struct source *s, float *chunk, size_t max_frames, struct eng_error *err)
{
    for (;;) {
        float **pcm;
        int link = s->link;
        long got = ov_read_float(&s->lib.ov, &pcm, (int)max_frames, &link);
        /* A hole is a lost or damaged page: decoding goes on after it, as players do. */
        if (got == OV_HOLE) continue;
        if (got < 0) return eng_fail(err, ENG_UNDECODABLE, "%s", vorbis_reason((int)got));
        if (link != s->link && vorbis_check_link(s, link, err) != 0) return -1;
        mixdown_planar(pcm, (size_t)got, s->channels, chunk);
        return got;
    }
}

static void vorbis_close(struct source *s)
{
    ov_clear(&s->lib.ov);
}

static int vorbis_open(struct source *s, struct eng_error *err)
{
    /* Read only, as a stream: no seek or tell. Opened seekable, libvorbisfile 1.3.7 walks the
     * whole file for the links of a chain and leaks their serial numbers when a later link's
     * headers are bad; as a stream it meets each link's headers while decoding, and frees them
     * on failure. The header's length is lost with it (ov_pcm_total needs seeking): the read loop
     * enforces the limit. No close function either: the upload belongs to the caller. On failure,
     * ov_open_callbacks releases what it allocated itself. */
    static const ov_callbacks io = {vorbis_io_read, NULL, NULL, NULL};
    int rc = ov_open_callbacks(&s->mem, &s->lib.ov, NULL, 0, io);
    if (rc != 0)
        return eng_fail(err, ENG_UNDECODABLE, "the audio cannot be decoded: %s", vorbis_reason(rc));
    const vorbis_info *vi = ov_info(&s->lib.ov, -1); /* the first link's */
    s->channels = vi->channels;
    s->rate = vi->rate > INT_MAX ? INT_MAX : (int)vi->rate; /* check_rate refuses it then */
    s->frames = -1;
    s->mono = true;
    s->format = "ogg";
    s->encoding = "vorbis";
    s->read = vorbis_read;
    s->close = vorbis_close;
    return 0;
}

/* libopusfile: Ogg Opus. ------------------------------------------------------------------ */

static const char *opus_reason(int code)
{
    switch (code) {
    case OP_ENOTFORMAT:
        return "no Opus headers where the stream begins";
    case OP_EBADHEADER:
        return "invalid Opus header";
    case OP_EVERSION:
        return "unknown Opus version";
    case OP_EIMPL:
        return "the stream uses an Opus feature libopusfile lacks, such as a channel mapping";
    case OP_EBADLINK:
    case OP_EBADTIMESTAMP:
        return "invalid granule positions in the Ogg stream";
    case OP_EFAULT:
        return "libopusfile ran out of memory or failed inside";
    default:
        return "damaged or truncated Ogg Opus data";
    }
}

/* Opens the link of a chain that begins at start, up to where the next begins. libopusfile
 * opens a whole chain itself, but 0.12 leaks the comment header of a later link whose audio is
 * missing or badly timestamped (op_bisect_forward_serialno, when op_find_initial_pcm_offset
 * fails), and read as a stream it leaks one when a link is empty. Given one link at a time,
 * with no other stream beginning in the data it sees, it opens only the link it was given and
 * frees it on failure. */
static int opus_open_link(struct source *s, size_t start, struct eng_error *err)
{
    size_t end = ogg_probe_stream_at(s->lib.opus.data, s->lib.opus.size, start + 1);
    int rc = 0;
    OggOpusFile *file = op_open_memory(s->lib.opus.data + start, end - start, &rc);
    if (!file)
        return eng_fail(err, ENG_UNDECODABLE, "the audio cannot be decoded: %s", opus_reason(rc));
    int channels = op_channel_count(file, 0);
    if (s->lib.opus.file && channels != s->channels) {
        op_free(file);
        return eng_fail(err, ENG_UNSUPPORTED,
                        "a chained Ogg Opus stream changes from %d channels to %d; send each "
                        "part on its own",
                        s->channels, channels);
    }
    op_free(s->lib.opus.file);
    s->lib.opus.file = file;
    s->lib.opus.end = end;
    s->channels = channels;
    return 0;
}

/* Interleaved samples at 48 kHz, the one rate Opus decodes at, with the header's output gain
 * applied; at the end of a link, on into the next. */
static long opus_read(struct source *s, float *chunk, size_t max_frames, struct eng_error *err)
{
    for (;;) {
        /* At most CHUNK_SAMPLES samples: an int. */
        int got =
            op_read_float(s->lib.opus.file, chunk, (int)(max_frames * (size_t)s->channels), NULL);
        /* A hole is a lost or damaged page: decoding goes on after it, as players do. */
        if (got == OP_HOLE) continue;
        if (got < 0) return eng_fail(err, ENG_UNDECODABLE, "%s", opus_reason(got));
        if (got > 0 || s->lib.opus.end == s->lib.opus.size) return got;
        if (opus_open_link(s, s->lib.opus.end, err) != 0) return -1;
    }
}

static void opus_close(struct source *s)
{
    op_free(s->lib.opus.file);
}

/* data: the Ogg data, after any ID3v2 tag. Opened from memory, libopusfile seeks, and gives a
 * single link's length from its last granule position, so max_seconds is checked from the
 * header; a chain's length is only known at its end, so the read loop enforces it then. */
static int opus_open(struct source *s, const unsigned char *data, size_t size, size_t streams,
                     struct eng_error *err)
{
    s->lib.opus.data = data;
    s->lib.opus.size = size;
    s->lib.opus.file = NULL;
    if (opus_open_link(s, ogg_probe_stream_at(data, size, 0), err) != 0) return -1;
    ogg_int64_t total = op_pcm_total(s->lib.opus.file, -1);
    s->rate = 48000;
    s->frames = streams == 1 && total > 0 ? total : -1;
    s->format = "ogg";
    s->encoding = "opus";
    s->read = opus_read;
    s->close = opus_close;
    return 0;
}

/* Ogg: what every stream in the file holds (ogg_probe.c) picks the library, so neither meets a
 * stream it was not made for and libsndfile none at all. A file mixing Opus and Vorbis, or with
 * any other stream (FLAC, Speex, video), is refused before a library reads it. */
static int ogg_open(struct source *s, struct eng_error *err)
{
    size_t tag = id3v2_length(s->mem.data, s->mem.size);
    const unsigned char *p = s->mem.data + tag;
    size_t n = s->mem.size - tag;
    struct ogg_probe probe;
    ogg_probe_scan(p, n, &probe);
    if (probe.overrun)
        return eng_fail(err, ENG_UNDECODABLE,
                        "the audio cannot be decoded: it is mostly false Ogg page starts");
    if (probe.other > 0)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the Ogg file holds a stream that is neither Vorbis nor Opus (%s); %s",
                        probe.other_name, ACCEPTED);
    if (probe.opus > 0 && probe.vorbis > 0)
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the Ogg file mixes Opus and Vorbis streams; send one codec per file");
    if (probe.opus > 0) return opus_open(s, p, n, probe.opus, err);
    if (probe.vorbis > 0) return vorbis_open(s, err);
    return eng_fail(err, ENG_UNDECODABLE, "the audio cannot be decoded: %s",
                    probe.pages > 0 ? "no Ogg stream begins in it"
                                    : "no whole Ogg page with a right CRC in it");
}

/* libmpg123: MPEG audio layers I to III. --------------------------------------------------- */

static mpg123_ssize_t mpeg_io_read(void *user, void *ptr, size_t count)
{
    return (mpg123_ssize_t)mem_read(ptr, count > INT64_MAX ? INT64_MAX : (sf_count_t)count, user);
}

static off_t mpeg_io_seek(void *user, off_t offset, int whence)
{
    return (off_t)mem_seek(offset, whence, user);
}

/* Quiet (libmpg123 prints notes about damaged frames to stderr otherwise), float32 output at the
 * stream's own rate and channel count, reading the upload through the callbacks above. */
static int mpeg_configure(mpg123_handle *mh)
{
    /* Frankenstein streams (MP3s glued together) may change layout mid-stream; libsndfile
     * refused them too. */
    int rc = mpg123_param(mh, MPG123_ADD_FLAGS, MPG123_QUIET | MPG123_NO_FRANKENSTEIN, 0);
    if (rc == MPG123_OK) rc = mpg123_format_none(mh);
    const long *rates;
    size_t count;
    mpg123_rates(&rates, &count);
    for (size_t i = 0; i < count && rc == MPG123_OK; i++)
        rc = mpg123_format(mh, rates[i], MPG123_MONO | MPG123_STEREO, MPG123_ENC_FLOAT_32);
    if (rc == MPG123_OK) rc = mpg123_replace_reader_handle(mh, mpeg_io_read, mpeg_io_seek, NULL);
    return rc;
}

/* Takes libmpg123's output format: the first one becomes the source's layout; a change after
 * MPG123_NEW_FORMAT would need a second mixdown and resampler, so it is refused rather than
 * decoded wrong. */
static int mpeg_check_format(struct source *s, struct eng_error *err)
{
    long rate;
    int channels, encoding;
    if (mpg123_getformat(s->lib.mh, &rate, &channels, &encoding) != MPG123_OK)
        return eng_fail(err, ENG_UNDECODABLE, "the MPEG stream cannot be decoded: %s",
                        mpg123_strerror(s->lib.mh));
    if (encoding != MPG123_ENC_FLOAT_32)
        return eng_fail(err, ENG_INTERNAL, "libmpg123 gives encoding %d, not float", encoding);
    if (s->rate == 0) { /* the first frame */
        s->channels = channels;
        s->rate = (int)rate; /* one of mpg123_rates */
    } else if (channels != s->channels || rate != s->rate) {
        return eng_fail(err, ENG_UNSUPPORTED,
                        "the MPEG stream changes from %d channels at %d Hz to %d at %ld Hz; send "
                        "each part on its own",
                        s->channels, s->rate, channels, rate);
    }
    return 0;
}

static long mpeg_read(struct source *s, float *chunk, size_t max_frames, struct eng_error *err)
{
    size_t frame_bytes = (size_t)s->channels * sizeof(float);
    for (;;) {
        size_t done = 0;
        int rc = mpg123_read(s->lib.mh, chunk, max_frames * frame_bytes, &done);
        if (rc == MPG123_OK || done > 0) return (long)(done / frame_bytes);
        switch (rc) {
        case MPG123_NEW_FORMAT:
            if (mpeg_check_format(s, err) != 0) return -1;
            continue;
        case MPG123_DONE:
        case MPG123_NEED_MORE: /* the data ends inside a frame */
            return 0;
        default:
            return eng_fail(err, ENG_UNDECODABLE, "%s", mpg123_strerror(s->lib.mh));
        }
    }
}

static void mpeg_close(struct source *s)
{
    mpg123_delete(s->lib.mh);
}

/* Everything after mpg123_new; the caller deletes the handle when this fails. */
static int mpeg_start(struct source *s, struct eng_error *err)
{
    mpg123_handle *mh = s->lib.mh;
    if (mpeg_configure(mh) != MPG123_OK)
        return eng_fail(err, ENG_INTERNAL, "libmpg123: %s", mpg123_strerror(mh));
    if (mpg123_open_handle(mh, &s->mem) != MPG123_OK)
        return eng_fail(err, ENG_UNDECODABLE, "the audio cannot be decoded: %s",
                        mpg123_strerror(mh));
    /* Parses up to the first frame; the stream's layout becomes the source's. */
    if (mpeg_check_format(s, err) != 0) return -1;
    struct mpg123_frameinfo2 fi;
    if (mpg123_info2(mh, &fi) != MPG123_OK)
        return eng_fail(err, ENG_UNDECODABLE, "the audio cannot be decoded: %s",
                        mpg123_strerror(mh));
    static const char *const layers[] = {"other", "mp1", "mp2", "mp3"};
    s->encoding = fi.layer >= 1 && fi.layer <= 3 ? layers[fi.layer] : layers[0];
    /* From the Xing/Info header, or estimated from the size and bit rate when there is none. */
    off_t length = mpg123_length(mh);
    s->frames = length > 0 ? length : -1;
    s->format = "mp3";
    s->read = mpeg_read;
    s->close = mpeg_close;
    return 0;
}

static int mpeg_open(struct source *s, struct eng_error *err)
{
    int rc = MPG123_OK;
    s->lib.mh = mpg123_new(NULL, &rc);
    if (!s->lib.mh)
        return eng_fail(err, rc == MPG123_OUT_OF_MEM ? ENG_NO_MEMORY : ENG_INTERNAL,
                        "libmpg123: %s", mpg123_plain_strerror(rc));
    if (mpeg_start(s, err) == 0) return 0;
    mpg123_delete(s->lib.mh);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                   */

/* An MPEG audio frame header: 11 sync bits, a version other than "reserved" (01) and a layer
 * other than "reserved" (00), which is also what tells AAC's ADTS headers apart. */
static bool is_mpeg_frame(const unsigned char *p, size_t n)
{
    return n >= 2 && p[0] == 0xFF && (p[1] & 0xE0) == 0xE0 && (p[1] >> 3 & 3) != 1 &&
           (p[1] >> 1 & 3) != 0;
}

/* The source for a format by its magic bytes, or NULL for formats not decoded. libsndfile reads
 * two dozen more, but these are the ones clients send, and sniffing first keeps its parsers for
 * exotic formats away from untrusted data. */
static source_open_fn pick_format(const unsigned char *p, size_t n)
{
    if (n >= 12 &&
        (memcmp(p, "RIFF", 4) == 0 || memcmp(p, "RIFX", 4) == 0 || memcmp(p, "RF64", 4) == 0))
        return memcmp(p + 8, "WAVE", 4) == 0 ? sndfile_open : NULL;
    if (n >= 12 && memcmp(p, "FORM", 4) == 0)
        return memcmp(p + 8, "AIFF", 4) == 0 || memcmp(p + 8, "AIFC", 4) == 0 ? sndfile_open : NULL;
    if (n >= 4 && memcmp(p, "fLaC", 4) == 0) return sndfile_open;
    if (n >= 4 && memcmp(p, "OggS", 4) == 0) return ogg_open;
    return is_mpeg_frame(p, n) ? mpeg_open : NULL;
}

/* Taggers put ID3v2 tags in front of FLAC and Ogg files as well as MP3s, so what follows the tag
 * decides (each library skips the tag itself); anything else after a tag goes to libmpg123,
 * which resyncs past junk and refuses data without MPEG frames. */
static source_open_fn pick_source(const unsigned char *p, size_t n)
{
    size_t tag = id3v2_length(p, n);
    if (tag == 0) return pick_format(p, n);
    source_open_fn inner = tag < n ? pick_format(p + tag, n - tag) : NULL;
    return inner ? inner : mpeg_open;
}

/* Names formats that are recognisable but not read, so the client hears what it sent. */
static const char *unsupported_name(const unsigned char *p, size_t n)
{
    static const struct {
        const char *magic;
        size_t len, at;
        const char *name;
    } known[] = {
        {"ftyp", 4, 4, "MP4/M4A"},        {"\x1a\x45\xdf\xa3", 4, 0, "Matroska/WebM"},
        {"#!AMR", 5, 0, "AMR"},           {"caff", 4, 0, "CAF"},
        {"\xff\xf1", 2, 0, "AAC (ADTS)"}, {"\xff\xf9", 2, 0, "AAC (ADTS)"},
        {"ADIF", 4, 0, "AAC (ADIF)"},     {"MThd", 4, 0, "MIDI"},
        {".snd", 4, 0, "Sun AU"},         {"wvpk", 4, 0, "WavPack"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (n >= known[i].at + known[i].len &&
            memcmp(p + known[i].at, known[i].magic, known[i].len) == 0)
            return known[i].name;
    return NULL;
}

static int fail_unknown(const unsigned char *p, size_t n, struct eng_error *err)
{
    if (n == 0) return eng_fail(err, ENG_UNSUPPORTED, "the audio is empty (0 bytes)");
    const char *name = unsupported_name(p, n);
    if (name)
        return eng_fail(err, ENG_UNSUPPORTED, "%s audio is not supported; %s", name, ACCEPTED);
    char hex[3 * 8] = "";
    size_t shown = n < 8 ? n : 8;
    for (size_t i = 0; i < shown; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x%s", p[i], i + 1 < shown ? " " : "");
    return eng_fail(err, ENG_UNSUPPORTED, "unrecognised audio data (%zu bytes starting %s); %s", n,
                    hex, ACCEPTED);
}

struct decoder {
    struct source *src;
    int rate;           /* the output's */
    int64_t max_frames; /* of the source: the tighter of the two limits below */
    double max_seconds;
    int64_t max_samples; /* at the output rate; 0: none */
    int64_t total;       /* frames decoded */
    float *chunk;        /* CHUNK_SAMPLES samples */
    struct sink sink;
};

/* Fails for a clip of `frames` source frames past the limits, naming the one it passes. */
static int too_long(const struct decoder *d, int64_t frames, struct eng_error *err)
{
    const struct source *s = d->src;
    double seconds = (double)frames / s->rate;
    if (seconds > d->max_seconds)
        return eng_fail(err, ENG_TOO_LARGE, "the audio is %.1f s long; the limit is %g s", seconds,
                        d->max_seconds);
    return eng_fail(err, ENG_TOO_LARGE,
                    "the audio is %.1f s long: %.0f samples at %d Hz, past the limit of %lld "
                    "samples; a lower sample rate or a shorter clip fits",
                    seconds, seconds * d->rate, d->rate, (long long)d->max_samples);
}

/* The limits the header allows checking before any sample is decoded. The header's frame count
 * may be missing: the read loop enforces max_frames as well. */
static int check_header(const struct decoder *d, struct eng_error *err)
{
    const struct source *s = d->src;
    /* libsndfile refuses 0 channels when opening; the read loop divides by the count. */
    if (s->channels <= 0)
        return eng_fail(err, ENG_INVALID, "the audio has %d channels", s->channels);
    if (check_rate("the audio's sample rate", s->rate, err) != 0) return -1;
    if (s->frames > d->max_frames) return too_long(d, s->frames, err);
    return 0;
}

/* Reads the whole source through the sink, mono, checking every sample and the length. */
static int decode_samples(struct decoder *d, struct eng_error *err)
{
    struct source *s = d->src;
    size_t chunk_frames = s->mono ? CHUNK_SAMPLES : CHUNK_SAMPLES / (size_t)s->channels;
    for (;;) {
        /* The source's reason goes into a message of its own, err being optional. */
        struct eng_error why = {0};
        long got = s->read(s, d->chunk, chunk_frames, &why);
        if (got < 0)
            return eng_fail(err, why.code, "the audio cannot be decoded after %lld samples: %s",
                            (long long)d->total, why.message);
        if (got == 0) break;
        if (d->total + got > d->max_frames) return too_long(d, d->total + got, err);
        if (!s->mono) audio_mixdown(d->chunk, (size_t)got, s->channels, d->chunk);
        size_t bad = first_nonfinite(d->chunk, (size_t)got);
        if (bad < (size_t)got)
            return eng_fail(err, ENG_INVALID,
                            "sample %lld (at %.3f s) is NaN or infinite in at least one channel",
                            (long long)(d->total + (int64_t)bad),
                            (double)(d->total + (int64_t)bad) / s->rate);
        if (sink_push(&d->sink, d->chunk, (size_t)got, err) != 0) return -1;
        d->total += got;
    }
    if (d->total == 0) return eng_fail(err, ENG_INVALID, "the audio has no samples");
    return 0;
}

static struct audio *decode_opened(struct decoder *d, struct eng_error *err)
{
    const struct source *s = d->src;
    const int rate = d->rate;
    d->max_frames = (int64_t)floor(d->max_seconds * s->rate);
    if (d->max_samples > 0) {
        int64_t by_samples = (int64_t)floor((double)d->max_samples * s->rate / rate);
        if (by_samples < d->max_frames) d->max_frames = by_samples;
    }
    if (check_header(d, err) != 0) return NULL;
    d->chunk = malloc(CHUNK_SAMPLES * sizeof(float));
    if (!d->chunk) {
        eng_fail(err, ENG_NO_MEMORY, "out of memory for decoding");
        return NULL;
    }
    if (sink_open(&d->sink, (double)rate / s->rate,
                  s->frames > 0 ? (size_t)s->frames : CHUNK_SAMPLES, err) != 0)
        return NULL;
    if (decode_samples(d, err) != 0) return NULL;
    return sink_finish(&d->sink, rate, err);
}

struct audio *audio_decode(const void *data, size_t size, const struct audio_decode_options *opt,
                           struct audio_info *info, struct eng_error *err)
{
    if (!data && size > 0) {
        eng_fail(err, ENG_INVALID, "no audio data");
        return NULL;
    }
    int rate = opt && opt->rate ? opt->rate : AUDIO_DEFAULT_RATE;
    double max_seconds = opt && opt->max_seconds ? opt->max_seconds : AUDIO_DEFAULT_MAX_SECONDS;
    if (check_rate("the output rate", rate, err) != 0) return NULL;
    if (!(max_seconds > 0)) {
        eng_fail(err, ENG_INVALID, "max_seconds is %g; it must be positive", max_seconds);
        return NULL;
    }
    source_open_fn open = pick_source(data, size);
    if (!open) {
        fail_unknown(data, size, err);
        return NULL;
    }
    struct source src = {.mem = {.data = (unsigned char *)data, .size = size}};
    if (open(&src, err) != 0) return NULL;
    struct decoder d = {.src = &src,
                        .rate = rate,
                        .max_seconds = max_seconds,
                        .max_samples = opt ? opt->max_samples : 0};
    struct audio *a = decode_opened(&d, err);
    if (a && info) {
        *info = (struct audio_info){
            .channels = src.channels, .rate = src.rate, .frames = (size_t)d.total};
        snprintf(info->format, sizeof info->format, "%s", src.format);
        snprintf(info->encoding, sizeof info->encoding, "%s", src.encoding);
    }
    sink_close(&d.sink);
    free(d.chunk);
    src.close(&src);
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding                                                                                   */

/* Writes a's samples: float as they are, or quantised to 16 bits the way decoding reads them
 * back (x * 32768), so a 16-bit clip survives a decode/encode round trip unchanged. libsndfile's
 * own float-to-short conversion scales by 32767 instead. */
static int write_samples(SNDFILE *snd, const struct audio *a, bool pcm16)
{
    if (!pcm16) {
        sf_count_t n = (sf_count_t)a->length;
        return sf_write_float(snd, a->samples, n) == n ? 0 : -1;
    }
    short buf[4096];
    const size_t cap = sizeof buf / sizeof buf[0];
    for (size_t i = 0; i < a->length;) {
        size_t n = a->length - i < cap ? a->length - i : cap;
        for (size_t j = 0; j < n; j++) {
            float v = nearbyintf(a->samples[i + j] * 32768.0f);
            buf[j] = (short)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : v);
        }
        if (sf_write_short(snd, buf, (sf_count_t)n) != (sf_count_t)n) return -1;
        i += n;
    }
    return 0;
}

int audio_encode(const struct audio *a, enum audio_format fmt, void **out, size_t *out_size,
                 struct eng_error *err)
{
    static const int formats[] = {
        [AUDIO_WAV_PCM16] = SF_FORMAT_WAV | SF_FORMAT_PCM_16,
        [AUDIO_WAV_FLOAT] = SF_FORMAT_WAV | SF_FORMAT_FLOAT,
        [AUDIO_FLAC] = SF_FORMAT_FLAC | SF_FORMAT_PCM_16,
    };
    *out = NULL;
    *out_size = 0;
    if ((unsigned)fmt >= sizeof formats / sizeof formats[0])
        return eng_fail(err, ENG_INVALID, "unknown audio format %d", (int)fmt);
    if (a->length == 0) return eng_fail(err, ENG_INVALID, "the clip has no samples");
    if (check_rate("the clip's rate", a->rate, err) != 0) return -1;
    size_t bad = first_nonfinite(a->samples, a->length);
    if (bad < a->length)
        return eng_fail(err, ENG_INVALID, "sample %zu of the clip is NaN or infinite", bad);

    struct memfile m = {0};
    SF_INFO info = {.samplerate = a->rate, .channels = 1, .format = formats[fmt]};
    SNDFILE *snd = open_virtual(&m, SFM_WRITE, &info, "libsndfile cannot encode", err);
    if (!snd) {
        free(m.data);
        return -1;
    }
    int rc = write_samples(snd, a, fmt != AUDIO_WAV_FLOAT);
    if (rc != 0)
        eng_fail(err, m.failed ? ENG_NO_MEMORY : ENG_INTERNAL, "libsndfile: %s", sf_strerror(snd));
    if (sf_close(snd) != 0 && rc == 0)
        rc = eng_fail(err, ENG_INTERNAL, "libsndfile could not finish the file");
    if (rc == 0 && m.failed) rc = eng_fail(err, ENG_NO_MEMORY, "out of memory encoding audio");
    if (rc != 0) {
        free(m.data);
        return -1;
    }
    *out = m.data;
    *out_size = m.size;
    return 0;
}
