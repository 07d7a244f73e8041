/* `augserve bench train`: full training steps of a zoo model (engine/train), timed per phase, on
 * random data or on batches from the data loader. A step is what a train job runs per batch
 * (engine/train/README.md): a training forward, softmax cross-entropy, the backward pass and an
 * optimiser step (SGD with Nesterov momentum 0.9 and weight decay 5e-4, as
 * tests/bench/train_vs_torch.py configures PyTorch, or AdamW). */
#include "cli.h"
#include "cli_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/rng.h"
#include "train/train.h"

void cli_bench_train_usage(FILE *out)
{
    fprintf(
        out,
        "usage: augserve bench train [--arch A] [--batch B] [--seconds S] [--threads T]\n"
        "                            [--classes N] [--size S] [--optimizer sgd|adamw]\n"
        "                            [--convolution auto|direct]\n"
        "                            [--dataset DIR --policy P [--split S] "
        "[--loader-threads L]]\n"
        "Training steps of the zoo model A (default wrn-28-2; augserve's train jobs' archs)\n"
        "at batch B (default 128) with T threads (default: one per core): forward in\n"
        "training mode, cross-entropy, backward, then SGD (lr 0.01, Nesterov momentum 0.9,\n"
        "weight decay 5e-4) or AdamW (lr 0.001, weight decay 0.01), after one warm-up step,\n"
        "for S seconds (default 30). Convolutions run the training plan's algorithm per\n"
        "pass (auto: Winograd's where it pays) or the direct one throughout (direct).\n"
        "The input is one random batch, unless --dataset names an imported dataset: then\n"
        "batches of its split (default train) under policy P come from the loader on L\n"
        "threads (default 2), cropped to the model's size. Prints {\"arch\", \"batch\",\n"
        "\"threads\", \"classes\", \"size\", \"optimizer\", \"convolution\", \"parameters\",\n"
        "\"steps\", \"seconds\", \"images_per_second\", \"step_ms\", \"forward_ms\" (with the\n"
        "loss), \"backward_ms\", \"optimizer_ms\", \"loss\", \"plan_mb\", \"peak_rss_mb\"}, and\n"
        "with a dataset \"dataset\", \"split\", \"policy\", \"loader_ms\" (the wait for a\n"
        "batch) and \"loader_share\" (of the time).\n");
}

/* What a timed step reads and writes, and the time its phases took so far. */
struct train_bench {
    struct train_plan *plan;
    struct train_optim *optim;
    double lr;
    size_t batch, classes;
    float *dlogits;      /* batch x classes */
    const float *inputs; /* the random batch, or NULL to take one from feed */
    int32_t *labels;     /* the random batch's labels */
    struct cli_feed *feed;
    double loss;
    double loader, forward, backward, optimizer; /* seconds, summed over the timed steps */
};

/* One training step: 0, or -1 after saying why. */
static int train_step(struct train_bench *b)
{
    struct eng_error err = {0};
    const double t0 = cli_now();
    const float *inputs = b->inputs;
    const int32_t *labels = b->labels;
    if (!inputs) {
        struct data_batch batch;
        if (cli_feed_next(b->feed, &batch) != 0) return -1;
        inputs = batch.inputs;
        labels = batch.labels;
    }
    const double t1 = cli_now();
    const float *logits;
    memset(b->dlogits, 0, b->batch * b->classes * sizeof *b->dlogits);
    const struct train_targets targets = {labels, NULL};
    int rc = train_plan_forward(b->plan, inputs, true, &logits, &err);
    if (rc == 0)
        rc = train_loss_cross_entropy(logits, b->batch, b->classes, &targets, 0, NULL, &b->loss,
                                      b->dlogits, &err);
    const double t2 = cli_now();
    if (rc == 0) rc = train_plan_backward(b->plan, b->dlogits, NULL, &err);
    const double t3 = cli_now();
    if (rc == 0)
        rc = train_optim_step(b->optim, train_plan_param(b->plan, 0),
                              train_plan_param_count(b->plan), b->lr, &err);
    const double t4 = cli_now();
    if (rc != 0) return fprintf(stderr, "augserve: %s\n", err.message), -1;
    b->loader += t1 - t0;
    b->forward += t2 - t1;
    b->backward += t3 - t2;
    b->optimizer += t4 - t3;
    return 0;
}

/* One random batch: inputs uniform in [-1, 1) and labels cycling through the classes. */
static int random_batch(struct train_bench *b, size_t count, float **inputs)
{
    *inputs = malloc(count * sizeof **inputs);
    b->labels = malloc(b->batch * sizeof *b->labels);
    if (!*inputs || !b->labels) return fprintf(stderr, "augserve: out of memory\n"), 1;
    struct rng r;
    rng_init(&r, 1, 0, 0, 0);
    for (size_t i = 0; i < count; i++)
        (*inputs)[i] = (float)(2 * rng_uniform(&r) - 1);
    for (size_t i = 0; i < b->batch; i++)
        b->labels[i] = (int32_t)(i % b->classes);
    return 0;
}

/* The model as a zoo spec ("size" 0: the arch's default): 0, or 2 after saying why. */
static int bench_spec(const char *arch, int classes, int size, struct train_zoo_spec *spec)
{
    struct eng_error err = {0};
    json_t *model = json_pack("{s:s, s:i}", "arch", arch, "classes", classes);
    if (model && size > 0) json_object_set_new(model, "size", json_integer(size));
    int rc =
        model ? train_zoo_parse(model, spec, &err) : eng_fail(&err, ENG_NO_MEMORY, "out of memory");
    json_decref(model);
    if (rc != 0) fprintf(stderr, "augserve: %s\n", err.message);
    return rc != 0 ? 2 : 0;
}

/* The plan (every Conv direct when direct) and optimiser for spec's model at batch b->batch: 0,
 * or 1 (2 for an unknown optimiser) after saying why. */
static int bench_compile(struct train_bench *b, const struct train_zoo_spec *spec, int threads,
                         bool direct, const char *optimizer, struct nn_graph **g)
{
    struct eng_error err = {0};
    enum train_optim_kind kind;
    if (train_optim_kind_named(optimizer, &kind, &err) != 0)
        return fprintf(stderr, "augserve: %s\n", err.message), 2;
    struct train_optim_config config = train_optim_defaults(kind);
    if (kind == TRAIN_SGD) {
        config.momentum = 0.9;
        config.nesterov = true;
        config.weight_decay = 5e-4;
    }
    b->lr = kind == TRAIN_SGD ? 0.01 : 0.001;
    const struct nn_tensor_info shape = {
        "input", NN_FLOAT, 4, {(int64_t)b->batch, spec->channels, spec->size, spec->size}};
    const struct train_plan_options options = {
        .threads = threads, .seed = 1, .direct_convolution = direct};
    if ((*g = train_zoo_build(spec, 1, &err)) &&
        (b->plan = train_plan_compile(*g, &shape, &options, &err)) &&
        (b->optim = train_optim_create(&config, train_plan_param(b->plan, 0),
                                       train_plan_param_count(b->plan), &err)))
        return 0;
    fprintf(stderr, "augserve: %s: %s\n", spec->arch, err.message);
    return 1;
}

/* The warm-up step, then steps until seconds have passed (at least one): 0 with the steps and
 * the time they took, or 1 after saying why a step failed. */
static int bench_steps(struct train_bench *b, double seconds, long *steps, double *elapsed)
{
    if (train_step(b) != 0) return 1;
    b->loader = b->forward = b->backward = b->optimizer = 0;
    const double start = cli_now();
    for (*steps = 0, *elapsed = 0; *steps == 0 || *elapsed < seconds;
         *elapsed = cli_now() - start, ++*steps)
        if (train_step(b) != 0) return 1;
    return 0;
}

/* The result line of a run of steps; NULL when out of memory. */
static json_t *bench_result(const struct train_bench *b, const struct nn_graph *g, long steps,
                            double elapsed)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    const double ms = 1000.0 / (double)steps, mb = 1.0 / (1024 * 1024);
    json_t *line =
        json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "parameters",
                  (json_int_t)train_model_parameter_count(g), "steps", (json_int_t)steps, "seconds",
                  elapsed, "images_per_second", (double)steps * (double)b->batch / elapsed,
                  "step_ms", elapsed * ms, "forward_ms", b->forward * ms, "backward_ms",
                  b->backward * ms, "optimizer_ms", b->optimizer * ms, "loss", b->loss, "plan_mb",
                  (double)train_plan_bytes(b->plan) * mb, "peak_rss_mb", usage.ru_maxrss / 1024.0);
    if (line && b->feed) {
        json_object_set_new(line, "loader_ms", json_real(b->loader * ms));
        json_object_set_new(line, "loader_share", json_real(b->loader / elapsed));
    }
    return line;
}

int cli_bench_train(int argc, char **argv)
{
    const char *arch = "wrn-28-2", *optimizer = "sgd", *dir = NULL, *policy_text = NULL,
               *split_name = NULL, *convolution = "auto";
    int batch = 128, threads = 0, classes = 0, size = 0, loader_threads = 2;
    double seconds = 30;
    const struct cli_flag flags[] = {
        {"--arch", FLAG_TEXT, &arch},           {"--batch", FLAG_INT, &batch},
        {"--seconds", FLAG_REAL, &seconds},     {"--threads", FLAG_INT, &threads},
        {"--classes", FLAG_INT, &classes},      {"--size", FLAG_INT, &size},
        {"--optimizer", FLAG_TEXT, &optimizer}, {"--convolution", FLAG_TEXT, &convolution},
        {"--dataset", FLAG_TEXT, &dir},         {"--policy", FLAG_TEXT, &policy_text},
        {"--split", FLAG_TEXT, &split_name},    {"--loader-threads", FLAG_INT, &loader_threads}};
    if (cli_parse_flags(argc - 1, argv + 1, flags, FLAG_COUNT(flags)) != 0 || batch < 1 ||
        batch > 65536 || threads < 0 || threads > 256 || classes < 0 || size < 0 ||
        loader_threads < 0 || loader_threads > 256 || !(seconds > 0 && seconds <= 3600) ||
        !dir != !policy_text || (split_name && !dir) ||
        (strcmp(convolution, "auto") && strcmp(convolution, "direct")))
        return cli_bench_train_usage(stderr), 2;
    struct cli_feed feed = {0};
    int status = dir ? cli_feed_open(&feed, dir, split_name, policy_text) : 0;
    if (status == 0 && classes == 0)
        classes = dir && dataset_class_count(feed.dataset) > 0
                      ? (int)dataset_class_count(feed.dataset)
                      : 10;
    struct train_zoo_spec spec = {0};
    if (status == 0) status = bench_spec(arch, classes, size, &spec);
    const struct classify_preprocess pp = {.crop_height = spec.size,
                                           .crop_width = spec.size,
                                           .scale = 1.0f / 255,
                                           .mean = {0.485f, 0.456f, 0.406f},
                                           .std = {0.229f, 0.224f, 0.225f},
                                           .channels = 3};
    feed.options.preprocess = &pp;
    feed.options.batch = (size_t)batch;
    feed.options.drop_last = 1; /* the plan takes full batches */
    feed.options.threads = loader_threads;
    struct train_bench b = {.batch = (size_t)batch, .classes = (size_t)classes};
    struct nn_graph *g = NULL;
    float *inputs = NULL;
    if (status == 0 && !(b.dlogits = malloc(b.batch * b.classes * sizeof *b.dlogits))) {
        fprintf(stderr, "augserve: out of memory\n");
        status = 1;
    }
    if (status == 0 && dir)
        b.feed = &feed;
    else if (status == 0)
        status = random_batch(&b, b.batch * (size_t)spec.channels * (size_t)(spec.size * spec.size),
                              &inputs);
    b.inputs = inputs;
    if (status == 0)
        status = bench_compile(&b, &spec, threads, !strcmp(convolution, "direct"), optimizer, &g);
    long steps = 0;
    double elapsed = 0;
    if (status == 0) status = bench_steps(&b, seconds, &steps, &elapsed);
    json_t *line = status == 0
                       ? json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:s}", "arch", spec.arch,
                                   "batch", batch, "threads", threads, "classes", classes, "size",
                                   spec.size, "optimizer", optimizer, "convolution", convolution)
                       : NULL;
    if (line && dir)
        json_object_update_new(line, json_pack("{s:s, s:s, s:s}", "dataset", dir, "split",
                                               feed.options.split->name, "policy", policy_text));
    if (line) json_object_update_new(line, bench_result(&b, g, steps, elapsed));
    if (status == 0 && (!line || !json_object_get(line, "images_per_second"))) {
        fprintf(stderr, "augserve: out of memory\n");
        status = 1;
    }
    if (status == 0) cli_print_line(json_incref(line));
    json_decref(line);
    train_optim_free(b.optim);
    train_plan_free(b.plan);
    nn_graph_free(g);
    free(inputs);
    free(b.labels);
    free(b.dlogits);
    cli_feed_close(&feed);
    return status;
}
