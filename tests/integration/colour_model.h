/* The "colour" model the job kind tests score with (test_job_kinds.c, test_search_job.c): the mean
 * of each channel (GlobalAveragePool) times COLOUR_MODEL_SCALE as the logits of its three classes,
 * so its answers follow from an image's colours by a few lines of arithmetic; any height and
 * width. */
#ifndef AUGSERVE_TEST_COLOUR_MODEL_H
#define AUGSERVE_TEST_COLOUR_MODEL_H

#define COLOUR_MODEL_SCALE 4.0

/* A model folder `name` in the harness's models_dir: the colour model with this config.json text
 * and labels.txt text (its three classes, one a line, in channel order: "red\ngreen\nblue\n"). */
void colour_model_write(const char *name, const char *config, const char *labels);

#endif
