/* Gemm and MatMul as matrix products (oneDNN's sgemm): Y = alpha * op(A) op(B) + beta * C, and
 * their backward, dA = alpha * dY op(B)^T (transposed back when transA), dB = alpha * op(A)^T dY
 * (likewise), dC = beta * dY summed over the dims C broadcasts along. MatMul is Gemm without C:
 * A of any rank >= 2 (its leading dims flattened into rows) times a 2-D B. */
#include <string.h>

#include "train/internal.h"

/* q: M, N, K, transA, transB, C's rows and columns (1 where it broadcasts; 0: no C). */
enum { Q_M, Q_N, Q_K, Q_TA, Q_TB, Q_CM, Q_CN };

static int compile_gemm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const struct nn_node *node = s->node;
    int gemm = !strcmp(node->op_type, "Gemm");
    if ((s->in[0] = train_input(t, node, 0, TRAIN_ACTIVATION, err)) < 0 ||
        (s->in[1] = train_input(t, node, 1, TRAIN_ACTIVATION, err)) < 0 ||
        (gemm && nn_has_input(node, 2) &&
         (s->in[2] = train_input(t, node, 2, TRAIN_NO_DECAY, err)) < 0))
        return -1;
    struct nn_value a = *train_val(t, s->in[0]), b = *train_val(t, s->in[1]);
    int64_t ta = gemm && nn_attr_int(node, "transA", 0),
            tb = gemm && nn_attr_int(node, "transB", 0);
    if (gemm ? a.rank != 2 || b.rank != 2 : a.rank < 2 || b.rank != 2)
        return nn_unsupported(
            node, gemm ? "A and B must be 2-D" : "B must be 2-D (A of rank 2 or more)", err);
    int64_t m = ta ? a.dims[1] : (int64_t)(a.count / (size_t)a.dims[a.rank - 1]);
    int64_t k = ta ? a.dims[0] : a.dims[a.rank - 1];
    int64_t n = tb ? b.dims[0] : b.dims[1];
    if ((tb ? b.dims[1] : b.dims[0]) != k) return nn_invalid(node, "the inner dims differ", err);
    int64_t q[] = {m, n, k, ta, tb, 0, 0};
    if (s->in[2] >= 0) {
        const struct nn_value *c = train_val(t, s->in[2]);
        int64_t cd[2] = {c->rank == 2 ? c->dims[0] : 1, c->rank >= 1 ? c->dims[c->rank - 1] : 1};
        if (c->rank > 2 || (cd[0] != 1 && cd[0] != m) || (cd[1] != 1 && cd[1] != n))
            return nn_invalid(node, "C does not broadcast to [M, N]", err);
        q[Q_CM] = cd[0];
        q[Q_CN] = cd[1];
    }
    memcpy(s->q, q, sizeof q);
    s->f[0] = gemm ? nn_attr_float(node, "alpha", 1.0f) : 1.0f;
    s->f[1] = gemm ? nn_attr_float(node, "beta", 1.0f) : 1.0f;
    int64_t out[NN_MAX_RANK];
    int rank = gemm ? 2 : a.rank;
    memcpy(out, a.dims, sizeof out);
    if (gemm) out[0] = m;
    out[rank - 1] = n;
    s->skips_output = true;
    return (s->out = train_value(t, node->outputs[0], rank, out, NULL, err)) < 0 ? -1 : 0;
}

static int sgemm(const struct train_step *s, char ta, char tb, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc, struct eng_error *err)
{
    return nn_dnnl_check(dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc),
                         "dnnl_sgemm", s->node, err);
}

static int forward_gemm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const int64_t *q = s->q;
    const float *a = t->data[s->in[0]], *b = t->data[s->in[1]];
    float *y = t->data[s->out];
    if (sgemm(s, q[Q_TA] ? 'T' : 'N', q[Q_TB] ? 'T' : 'N', q[Q_M], q[Q_N], q[Q_K], s->f[0], a,
              q[Q_TA] ? q[Q_M] : q[Q_K], b, q[Q_TB] ? q[Q_K] : q[Q_N], 0.0f, y, q[Q_N], err))
        return -1;
    if (s->in[2] < 0) return 0;
    const float *c = t->data[s->in[2]];
    for (int64_t i = 0; i < q[Q_M]; i++)
        for (int64_t j = 0; j < q[Q_N]; j++)
            y[i * q[Q_N] + j] +=
                s->f[1] * c[(q[Q_CM] == 1 ? 0 : i) * q[Q_CN] + (q[Q_CN] == 1 ? 0 : j)];
    return 0;
}

static int backward_gemm(struct train_plan *t, struct train_step *s, struct eng_error *err)
{
    const int64_t *q = s->q;
    int64_t m = q[Q_M], n = q[Q_N], k = q[Q_K], lda = q[Q_TA] ? m : k, ldb = q[Q_TB] ? k : n;
    const float *a = t->data[s->in[0]], *b = t->data[s->in[1]], *dy = t->grad[s->out];
    float *da = t->grad[s->in[0]], *db = t->grad[s->in[1]], alpha = s->f[0];
    if (da &&
        (q[Q_TA]
             ? sgemm(s, q[Q_TB] ? 'T' : 'N', 'T', k, m, n, alpha, b, ldb, dy, n, 1.0f, da, m, err)
             : sgemm(s, 'N', q[Q_TB] ? 'N' : 'T', m, k, n, alpha, dy, n, b, ldb, 1.0f, da, k, err)))
        return -1;
    if (db &&
        (q[Q_TB]
             ? sgemm(s, 'T', q[Q_TA] ? 'T' : 'N', n, k, m, alpha, dy, n, a, lda, 1.0f, db, k, err)
             : sgemm(s, q[Q_TA] ? 'N' : 'T', 'N', k, n, m, alpha, a, lda, dy, n, 1.0f, db, n, err)))
        return -1;
    float *dc = s->in[2] >= 0 ? t->grad[s->in[2]] : NULL;
    for (int64_t i = 0; dc && i < m; i++)
        for (int64_t j = 0; j < n; j++)
            dc[(q[Q_CM] == 1 ? 0 : i) * q[Q_CN] + (q[Q_CN] == 1 ? 0 : j)] +=
                s->f[1] * dy[i * n + j];
    return 0;
}

const struct train_op train_gemm_op = {compile_gemm, forward_gemm, backward_gemm};
