/* Domains: a policy is for images, or for audio with its waveform ops before its spectrogram
 * ops, since the features sit between the two. Each node records one op of each domain in its
 * subtree, so that a refusal names both ops and where they are. */
#include "policy/internal.h"

#include <stdlib.h>

static void take_domains(struct node *n, const struct node *kid)
{
    if (!kid) return;
    if (!n->image) n->image = kid->image;
    if (!n->wave) n->wave = kid->wave;
    if (!n->spec) n->spec = kid->spec;
}

static int order_error(struct parser *ps, const struct node *wave, const struct node *spec,
                       const char *how)
{
    return eng_fail(ps->err, ENG_INVALID,
                    "%s: %s is a waveform op and %s after the spectrogram op %s at %s; waveform "
                    "ops must come before the features, spectrogram ops after them",
                    policy_node_pointer(wave), wave->call.op->name, how, spec->call.op->name,
                    policy_node_pointer(spec));
}

/* A seq runs its kids in order: no waveform op in a kid after a spectrogram op in an earlier one
 * (each kid's own order was checked when it was parsed). */
static int seq_order(struct parser *ps, const struct node *n)
{
    const struct node *spec = NULL;
    for (int i = 0; i < n->kid_count; i++) {
        if (spec && n->kids[i]->wave) return order_error(ps, n->kids[i]->wave, spec, "can run");
        if (!spec) spec = n->kids[i]->spec;
    }
    return 0;
}

/* A DAG runs the ops along one path from its start: no waveform op on an edge that some path
 * reaches after an edge holding a spectrogram op. spec_into[v] is such an op on a path into v;
 * relaxing every edge vertex_count times settles every path of an acyclic graph. */
static int dag_order(struct parser *ps, const struct node *n)
{
    const struct node **spec_into = policy_dag_array(n, sizeof *spec_into);
    if (!spec_into) return eng_fail(ps->err, ENG_NO_MEMORY, "out of memory for the policy");
    int rc = 0;
    for (int round = 0; round < n->vertex_count && rc == 0; round++)
        for (int v = 0; v < n->vertex_count && rc == 0; v++)
            for (int e = 0; e < n->vertices[v].edge_count && rc == 0; e++) {
                const struct dag_edge *edge = &n->vertices[v].edges[e];
                const struct node *spec = spec_into[v];
                if (spec && edge->node && edge->node->wave)
                    rc = order_error(ps, edge->node->wave, spec, "can run");
                if (!spec && edge->node) spec = edge->node->spec;
                if (spec && !spec_into[edge->to]) spec_into[edge->to] = spec;
            }
    free(spec_into);
    return rc;
}

int policy_check_domains(struct parser *ps, struct node *n)
{
    const struct node *audio;
    int rc = 0;
    switch (n->kind) {
    case NODE_OP:
        if (n->call.op->domain == OP_DOMAIN_WAVEFORM) n->wave = n;
        if (n->call.op->domain == OP_DOMAIN_SPECTROGRAM) n->spec = n;
        if (n->call.op->domain == OP_DOMAIN_IMAGE) n->image = n;
        return 0;
    case NODE_COPY_PASTE:
        n->image = n;
        return 0;
    case NODE_DAG:
        for (int v = 0; v < n->vertex_count; v++)
            for (int e = 0; e < n->vertices[v].edge_count; e++)
                take_domains(n, n->vertices[v].edges[e].node);
        rc = dag_order(ps, n);
        break;
    default:
        for (int i = 0; i < n->kid_count; i++)
            take_domains(n, n->kids[i]);
        if (n->kind == NODE_SEQ) rc = seq_order(ps, n);
        if (n->kind == NODE_REPEAT && n->repeat > 1 && n->wave && n->spec)
            rc = order_error(ps, n->wave, n->spec, "repeats");
        break;
    }
    audio = n->wave ? n->wave : n->spec;
    if (rc == 0 && audio && n->kind == NODE_MIX)
        rc = policy_fail_at(ps, "mix blends images; %s at %s is an audio op", audio->call.op->name,
                            policy_node_pointer(audio));
    if (rc == 0 && audio && n->image)
        rc = eng_fail(ps->err, ENG_INVALID,
                      "%s: %s is a %s op and %s at %s an image op; a policy is for images or for "
                      "audio, not both",
                      policy_node_pointer(audio), audio->call.op->name,
                      op_domain_name(audio->call.op->domain), n->image->call.op->name,
                      policy_node_pointer(n->image));
    return rc;
}
