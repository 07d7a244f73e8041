/* A self-training round's labelling (job_self_training.h): every teacher's pass over the
 * unlabeled split (job_classify_pass, the classifier kinds' own, as pseudo-label's), their mean,
 * the selection, the artifact and the student's split and soft targets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_classify.h"
#include "job_kind.h"
#include "job_self_training.h"
#include "job_train.h"
#include "self_training_select.h"

/* err's message with its "params.<field>" start named as the teacher's: the classifier kinds'
 * code names the model "params.model" and the split "params.split". */
static int as_teacher(struct eng_error *err, long index)
{
    static const char *const fields[] = {"params.model", "params.split", "params.dataset"};
    char rest[sizeof err->message], teacher[48] = "params.teacher";
    if (index >= 0) snprintf(teacher, sizeof teacher, "params.teacher/%ld", index);
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        size_t n = strlen(fields[f]);
        if (strncmp(err->message, fields[f], n) != 0) continue;
        snprintf(rest, sizeof rest, "%s", err->message + n);
        /* A split the dataset lacks is the unlabeled split's fault, not the teacher's. */
        return eng_fail(err, err->code, "%s%s", f == 1 ? "params.unlabeled_split" : teacher, rest);
    }
    return -1;
}

int self_training_teacher_open(struct job_classify *jc, const struct app *app,
                               const struct self_training_params *sp, const char *name, long index,
                               struct eng_error *err)
{
    json_t *params = json_pack("{s:s, s:s, s:s, s:I}", "model", name, "dataset", sp->dataset_id,
                               "split", sp->unlabeled, "seed", (json_int_t)sp->seed);
    int rc = params ? job_classify_open(jc, app, params, 0, err) : eng_no_memory(err);
    json_decref(params);
    /* A teacher with labels must have exactly the dataset's classes: a class the dataset lacks
     * would take probability no pseudo-label can stand for. One without labels is checked on its
     * first batch. */
    size_t labels = jc->model_classes, classes = jc->dataset ? dataset_class_count(jc->dataset) : 0;
    if (rc == 0 && labels && labels != classes)
        rc = eng_fail(err, ENG_INVALID,
                      "params.model: model %s has %zu classes and dataset %s %zu; a teacher "
                      "labels with the dataset's classes",
                      name, labels, sp->dataset_id, classes);
    return rc == 0 ? 0 : as_teacher(err, index);
}

/* One teacher's pass: its probabilities, in the dataset's class order, added to the sum. */
struct pass {
    struct job_classify *jc;
    struct self_training_labels *l;
    size_t done, teachers;
};

static int on_batch(void *arg, const struct data_batch *b, const float *probs, size_t classes,
                    struct eng_error *err)
{
    struct pass *p = arg;
    struct self_training_labels *l = p->l;
    if (classes != l->classes)
        return eng_fail(err, ENG_INVALID,
                        "params.teacher: model %s gives %zu class scores and dataset %s has %zu "
                        "classes; a teacher labels with the dataset's classes",
                        p->jc->model_name, classes, p->jc->dataset_id, l->classes);
    for (size_t i = 0; i < b->size; i++, p->done++)
        for (size_t c = 0; c < classes; c++)
            l->probs[p->done * classes + c] +=
                probs[i * classes + (size_t)p->jc->class_map[c]] / (float)p->teachers;
    return 0;
}

int self_training_teach(struct job_ctx *ctx, const struct self_training_params *sp,
                        const json_t *teachers, struct self_training_labels *l,
                        struct eng_error *err)
{
    size_t i;
    const json_t *t;
    json_array_foreach(teachers, i, t)
    {
        struct job_classify jc;
        struct pass p = {.jc = &jc, .l = l, .teachers = json_array_size(teachers)};
        job_ctx_log(ctx, "teacher %s labels split %s", json_string_value(t), sp->unlabeled);
        int rc = self_training_teacher_open(&jc, job_ctx_app(ctx), sp, json_string_value(t),
                                            (long)i, err);
        if (rc == 0) rc = job_classify_pass(ctx, &jc, NULL, 0, 0, on_batch, &p, err);
        job_classify_close(&jc);
        if (rc) return -1;
    }
    return 0;
}

/* The argmax of each mean (the lower class on ties) and its probability. */
static void vote(struct self_training_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const float *row = l->probs + i * l->classes;
        uint32_t top = 0;
        for (uint32_t c = 1; c < l->classes; c++)
            if (row[c] > row[top]) top = c;
        l->label[i] = top;
        l->confidence[i] = row[top];
    }
}

/* The student's split: the labeled images, then the kept ones with their copies. */
static int student_split(struct self_training_labels *l, const struct dataset *ds,
                         const struct data_split *labeled, struct eng_error *err)
{
    size_t count = labeled->count + l->images, k = 0;
    uint32_t *indices = malloc(count * sizeof *indices);
    int32_t *labels = malloc(count * sizeof *labels);
    l->student = (struct data_split){
        .name = labeled->name, .indices = indices, .labels = labels, .count = count, .labeled = 1};
    if (!indices || !labels) return eng_no_memory(err);
    for (; k < labeled->count; k++) {
        indices[k] = labeled->indices[k];
        labels[k] = data_split_label(ds, labeled, k);
    }
    for (size_t i = 0; i < l->n; i++)
        for (uint32_t c = 0; c < l->copies[i]; c++, k++) {
            indices[k] = l->split->indices[i];
            labels[k] = (int32_t)l->label[i];
        }
    return 0;
}

/* The counts of the selection, against the hidden labels where the dataset has them. */
static void count(struct self_training_labels *l, const struct dataset *ds, double threshold)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->confidence[i] < threshold) continue;
        int truth = dataset_label(ds, l->split->indices[i]);
        l->kept++;
        l->used += l->copies[i] > 0;
        l->images += l->copies[i];
        l->per_class[l->label[i]] += l->copies[i];
        l->judged += truth >= 0;
        l->correct += truth >= 0 && (uint32_t)truth == l->label[i];
    }
}

static int write_artifact(struct job_ctx *ctx, const struct self_training_labels *l,
                          const struct dataset *ds, const char *name, struct eng_error *err)
{
    FILE *f = job_ctx_artifact_resume(ctx, name, 0, err);
    if (!f) return -1;
    int ok = 1;
    for (size_t i = 0; ok && i < l->n; i++) {
        uint32_t index = l->split->indices[i];
        json_t *line =
            json_pack("{s:s, s:I, s:s, s:f, s:I}", "file", dataset_source(ds, index), "index",
                      (json_int_t)index, "label", dataset_class_name(ds, l->label[i]), "confidence",
                      l->confidence[i], "copies", (json_int_t)l->copies[i]);
        ok = line && json_dumpf(line, f, JSON_COMPACT) == 0 && fputc('\n', f) != EOF;
        json_decref(line);
    }
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : eng_fail(err, ENG_INTERNAL, "cannot write artifact %s", name);
}

int self_training_labels_open(struct self_training_labels *l, const struct self_training_params *sp,
                              struct dataset *ds, struct eng_error *err)
{
    memset(l, 0, sizeof *l);
    l->split = dataset_split(ds, sp->unlabeled);
    if (!l->split) return eng_fail(err, ENG_INTERNAL, "split %s is gone", sp->unlabeled);
    l->n = l->split->count;
    l->classes = dataset_class_count(ds);
    l->probs = calloc(l->n * l->classes, sizeof *l->probs);
    l->label = malloc(l->n * sizeof *l->label);
    l->confidence = malloc(l->n * sizeof *l->confidence);
    l->copies = malloc(l->n * sizeof *l->copies);
    l->per_class = calloc(l->classes, sizeof *l->per_class);
    return l->probs && l->label && l->confidence && l->copies && l->per_class ? 0
                                                                              : eng_no_memory(err);
}

int self_training_labels_finish(struct job_ctx *ctx, const struct self_training_params *sp,
                                struct dataset *ds, const struct data_split *labeled,
                                const char *artifact, struct self_training_labels *l,
                                struct eng_error *err)
{
    vote(l);
    if (self_training_select(l->label, l->confidence, l->n, l->classes, sp->threshold,
                             sp->per_class, l->copies, err))
        return -1;
    for (size_t i = 0; sp->soft && i < l->n; i++)
        self_training_sharpen(l->probs + i * l->classes, l->classes, sp->temperature);
    count(l, ds, sp->threshold);
    return write_artifact(ctx, l, ds, artifact, err) || student_split(l, ds, labeled, err) ? -1 : 0;
}

void self_training_labels_free(struct self_training_labels *l)
{
    free(l->probs);
    free(l->label);
    free(l->confidence);
    free(l->copies);
    free(l->per_class);
    free((void *)l->student.indices);
    free((void *)l->student.labels);
    memset(l, 0, sizeof *l);
}

json_t *self_training_labels_json(const struct self_training_labels *l, const struct dataset *ds)
{
    json_t *per_class = json_array();
    for (size_t c = 0; per_class && c < l->classes; c++)
        json_array_append_new(per_class, json_pack("{s:s, s:I}", "class", dataset_class_name(ds, c),
                                                   "images", (json_int_t)l->per_class[c]));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "unlabeled", (json_int_t)l->n, "kept",
                     (json_int_t)l->kept, "dropped", (json_int_t)(l->n - l->kept), "used",
                     (json_int_t)l->used, "images", (json_int_t)l->images, "per_class", per_class,
                     "accuracy",
                     job_train_number(l->judged ? (double)l->correct / (double)l->judged : NAN));
}

/* Position of dataset image index in the unlabeled split (ascending), or -1. */
static long unlabeled_position(const struct data_split *s, uint32_t index)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->indices[mid] < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->count && s->indices[lo] == index ? (long)lo : -1;
}

int self_training_targets(struct job_train_run *r, const struct data_batch *b, float *probs,
                          struct eng_error *err)
{
    (void)err;
    const struct self_training_labels *l = r->user;
    memset(probs, 0, b->size * l->classes * sizeof *probs);
    for (size_t i = 0; i < b->size; i++) {
        long u = unlabeled_position(l->split, b->indices[i]);
        if (u >= 0)
            memcpy(probs + i * l->classes, l->probs + (size_t)u * l->classes,
                   l->classes * sizeof *probs);
        else
            probs[i * l->classes + (size_t)b->labels[i]] = 1;
    }
    return 0;
}
