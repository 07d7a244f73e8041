/* engine/search: policy searches. A search space is a policy document with `$search`
 * placeholders (or a named space that expands to one); the algorithms propose points in it and
 * learn from the values reported back. The two halves meet in one small contract, the dimension
 * list: a space compiles to `struct search_dim`s, a point is one double per dimension, and an
 * algorithm needs nothing else (plus, optionally, the space's own sampler and mutation, for spaces
 * such as G-Augment's graphs whose structure a per-dimension draw does not respect).
 *
 * Conventions (../core/engine.h): errors are returned as values in `struct eng_error`, nothing is
 * printed; every object is owned by its caller and freed by the matching _free, which accepts
 * NULL; the same seed gives the same proposals (draws are addressed by rng_init coordinates, not
 * by a shared stream), whatever the thread count. */
#ifndef AUGSERVE_ENGINE_SEARCH_SEARCH_H
#define AUGSERVE_ENGINE_SEARCH_SEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

/* ---- Dimensions: the contract between spaces and algorithms ---------------------------------- */

enum search_dim_kind {
    SEARCH_DIM_CHOICE,     /* an index in [0, choices); unordered */
    SEARCH_DIM_INT,        /* an integer in [low, high], both inclusive */
    SEARCH_DIM_UNIFORM,    /* a real in [low, high] */
    SEARCH_DIM_LOGUNIFORM, /* a real in [low, high], 0 < low, uniform in log */
    SEARCH_DIM_QUANTIZED,  /* low + k * step for an integer k >= 0, at most high */
};

struct search_dim {
    enum search_dim_kind kind;
    double low, high, step; /* step: QUANTIZED only */
    size_t choices;         /* CHOICE only, >= 1 */
    /* Conditional dimensions: a placeholder inside one option of a `choice` between subtrees is
     * active only when that choice takes that option. parent = -1: always active. */
    int parent;
    size_t parent_choice;
    const char *pointer; /* JSON pointer of the placeholder in the space's document; owned by the
                            space */
};

/* How a space offers itself to an algorithm. sample and mutate may be NULL: then a point is
 * drawn dimension by dimension from its prior, and a mutation redraws one active dimension. */
struct search_view {
    const struct search_dim *dims;
    size_t n;
    void *ctx;
    void (*sample)(void *ctx, struct rng *r, double *point);
    void (*mutate)(void *ctx, struct rng *r, const double *parent, double *child);
};

/* ---- Dimension helpers (dims.c) -------------------------------------------------------------- */

/* Which dimensions a point activates (parents come before their children in the list): a
 * dimension is active when it has no parent, or its parent is active and takes parent_choice. */
void search_dims_active(const struct search_dim *dims, size_t n, const double *point, bool *active);

/* A draw from a dimension's prior: uniform over the choices, the integers of [low, high] and the
 * lattice points of a QUANTIZED dimension; uniform in [low, high) for UNIFORM, uniform in log for
 * LOGUNIFORM. */
double search_dim_sample(const struct search_dim *d, struct rng *r);

/* x moved onto the dimension: rounded to a whole choice or integer, to the nearest lattice point
 * (written with 15 significant digits, so 3 steps of 0.1 are 0.3), clamped to [low, high]. An
 * algorithm that proposes reals (TPE) may use it; concretize applies it to every value. */
double search_dim_snap(const struct search_dim *d, double x);

/* ---- Spaces (space.c, spaces.c, gaugment.c) ------------------------------------------------
 *
 * Placeholders. Any value of a policy document (an op's argument, a preset's n or m, a p's
 * probability, a node in a list) may be {"$search": {<distribution>}}, alone in its object:
 *   {"choice": [v, ...]}            one of 1 to SEARCH_MAX_CHOICES values or whole subtrees; a
 *                                   placeholder inside option i is a conditional dimension
 *                                   (parent: the choice, parent_choice: i)
 *   {"int": [low, high]}            whole numbers, both ends included
 *   {"uniform": [low, high]}        low < high
 *   {"loguniform": [low, high]}     0 < low < high
 *   {"quantized": [low, high, step]} low, low + step, ... up to high
 * A dimension's pointer is its placeholder's JSON pointer in the space's document (RFC 6901:
 * "/seq/1/degrees"; one inside an option, "/seq/0/$search/choice/1/degrees"). A whole number
 * (int, and quantized with a whole low and step) is written as a JSON integer, so presets that
 * want integers take it. Compile checks each placeholder's shape ("/seq/1/degrees/$search:
 * uniform needs [low, high] with low < high"), then that the space is a policy space: its lowest
 * point (every dimension at its low, each choice at its first option) must parse, and so must
 * every other choice option, every dimension's high and, for reals and fractional lattices, one
 * value between (a real where an op wants a whole number fails there), one at a time with the
 * rest at their lows and parents set to activate it. Op ranges are intervals, so these stand for
 * the values between; a failure names the dimension ("/degrees: at its high, 400, the space gives
 * no valid policy: /degrees: must be in [-360, 360]"), at the lowest point the placeholder in
 * whose place the policy error lies, if any. Values that are valid only together (a level's bin
 * against its bins, both open) are not tried together.
 *
 * Named spaces, {"space": name, ...arguments}. An argument that is a range may be a number (fixed),
 * an array (a choice among its items) or a distribution object ({"int": [0, 30]}); its dimension's
 * pointer is the argument's name.
 *   randaugment  {"n": [1, 2, 3], "m": {"int": [0, 30]}} by default (M over torchvision's 31
 *                bins), plus the preset's bins, interpolation and fill; the document is the
 *                randaugment preset at n, m. The grid N {1, 2, 3} x M {3, 7, 11, 15} is
 *                {"space": "randaugment", "n": [1, 2, 3], "m": [3, 7, 11, 15]}.
 *   specaugment  F {"int": [0, 27]}, mF [1, 2], T {"int": [0, 100]}, p {"quantized": [0.05, 1,
 *                0.05]}, mT [1, 2], W 80 (fixed unless given as a range), value "zero" or
 *                "mean" (never searched): the specaugment presets' document, a TimeWarp, mF
 *                FrequencyMasks of at most F bins, mT TimeMasks of at most T frames and p of them.
 *   autoaugment  k sub-policies (default 5, at most 25) of two ops each; per op three dimensions,
 *                /sub_policies/<i>/<j>/op (a choice among "ops", by default AutoAugment's 16 but
 *                SamplePairing, which the registry lacks), /p (quantized [0, 1, 0.1]: 11 values)
 *                and /bin (int [0, 9]). The document is the autoaugment presets': a choice over
 *                the sub-policies, each a seq of {"p", "do": op}, an op at {"level": {"bin": b,
 *                "bins": 10}} (torchvision's magnitudes, as the presets), Cutout at the
 *                reference's int(b * 20 / 10) pixels; the bin of an op without magnitude is
 *                ignored.
 *   ops-subset   which ops a TrivialAugment-style uniform choice draws from: one dimension per
 *                op, /ops/<name>, a choice of [true, false] (option 0 keeps the op, so the
 *                lowest point keeps all). "ops": names (each at a random bin of "bins", default
 *                31) or op nodes; by default the trivialaugment-wide preset's 14 nodes at bins. The
 *                space's sampler and mutation never propose the empty subset; concretize refuses
 *                it (a grid would reach it).
 *   gaugment     G-Augment's graphs: "domain" image (default) or audio, "depth" stages (default
 *                3, at most 8), "width" edges out of a vertex (default 3, at most 4), "ops" (by
 *                default AutoAugment's for images; Gain, Noise, Speed, TimeShift, Reverb,
 *                LowPass, HighPass, FrequencyMask, TimeMask and TimeWarp for audio).
 *
 * gaugment's encoding (fixed length: depth x width slots). The graph has vertices v0 .. v<depth>
 * and starts at v0; stage s's slots are the edges out of v<s>. Slot e of stage s has, at
 * /stages/<s>/edges/<e>/:
 *   on      a choice of [false, true]; slot 0 has none (always on), so every vertex keeps an edge
 *           and the graph is never empty; the slot's other dimensions are conditional on it
 *   op      a choice among the stage's ops and "none" (a skip edge, which applies nothing)
 *   weight  int [1, 10]; the edge's probability is its weight over its vertex's on edges'
 *   level   quantized [0, 1, 0.1], the op's {"level"} (ignored for ops without one)
 *   to      int [1, depth - s]: the edge goes to v<s + to> (no dimension in the last stage)
 * So a path has at most depth edges and a vertex at most width. Audio graphs with waveform and
 * spectrogram ops draw waveform ops in the first (depth + 1) / 2 stages and spectrogram ops in
 * the rest, so no waveform op follows a spectrogram op. Every point is a valid graph, so the
 * prior draws points; the mutation picks, uniformly among the moves the parent allows, adding an
 * edge (a slot turned on, its values drawn afresh), removing one, rewiring one to another stage,
 * changing its op, or changing its weight or level.
 *
 * Limits (below) bound what a hostile document costs: the check is at most two policy parses per
 * dimension and one per choice option, and SEARCH_MAX_CHECK_VALUES bounds their total size. */

struct search_space;

/* Limits a hostile document meets. A space is checked at compile by up to two policy parses per
 * dimension and one per choice option (space.c), so these bound that work as well as the memory
 * of the dimension list and of an algorithm's model of it. */
#define SEARCH_MAX_DIMS    256  /* dimensions in all */
#define SEARCH_MAX_CHOICES 256  /* options of one choice */
#define SEARCH_MAX_OPTIONS 1024 /* options of all choices */
/* The check's parses times the JSON values of the space's lowest point: a few seconds of parsing
 * at most. AutoAugment's 25 sub-policies need a third of it. */
#define SEARCH_MAX_CHECK_VALUES 1000000

/* A document with `$search` placeholders, or {"space": "<name>", ...arguments} for a named
 * space (randaugment, autoaugment, ops-subset, gaugment, specaugment). A bad placeholder, an
 * argument out of its range or a space that is no policy space fails with ENG_INVALID and a
 * message naming its JSON pointer, as policy errors do. */
struct search_space *search_space_compile(const json_t *doc, struct eng_error *err);
void search_space_free(struct search_space *s);

/* The view algorithms use; valid while the space lives. */
struct search_view search_space_view(const struct search_space *s);

/* The concrete policy document of a point (a new reference), or NULL with err set: ENG_INVALID
 * for an active value that is not finite or off its range (a hair outside is snapped back), or
 * for ops-subset's empty subset. Values are snapped (search_dim_snap); inactive ones are never
 * read. The document parses with policy_parse for the points of a checked space, but for the
 * combinations the check at compile does not try (above). */
json_t *search_space_concretize(const struct search_space *s, const double *point,
                                struct eng_error *err);

/* The point's values by placeholder, for leaderboards: {"<pointer>": value, ...}, inactive
 * dimensions left out; a choice shows its option when that is a number, string, boolean or null
 * (an op's name for autoaugment and gaugment), and its index when it is a subtree. NULL when out
 * of memory. */
json_t *search_space_params(const struct search_space *s, const double *point);

/* The domains of the policies the space gives: policy/policy.h's POLICY_IMAGE, POLICY_WAVEFORM
 * and POLICY_SPECTROGRAM bits, those of the policies the check at compile parsed. The check sets
 * every choice to each of its options (its parents set to reach it) and every op node, op name
 * and policy name of the space is in the document of some point it tries, so an op the space can
 * give is in one of those policies; and a policy is for images or for audio, never both. So a
 * space gives only image policies exactly when this is POLICY_IMAGE (or 0: no op at all). */
unsigned search_space_domains(const struct search_space *s);

/* For a message, where the check first met a policy of `domain` (one POLICY_* bit) and one of
 * its ops of that domain: "/$search/choice/1 at its option 1 gives a spectrogram policy
 * (FrequencyMask at /seq/0 of it)", or "the space at each dimension's low gives ..."; NULL when
 * search_space_domains has no such bit. Valid while the space lives. */
const char *search_space_domain_source(const struct search_space *s, unsigned domain);

/* For a message, where the check first met a policy of several views (a {"views": [...]} root,
 * as AugMix's jsd mode gives): "/$search/choice/1 at its option 1 gives a policy of 3 views"; NULL
 * when every policy the check parsed has one view (policy_view_count), which by the argument
 * above means every policy the space gives has one. Valid while the space lives. */
const char *search_space_views_source(const struct search_space *s);

/* ---- Algorithms (algo.c, algo_*.c) --------------------------------------------------------- */

/* An algorithm's whole state is its seed and the results told to it, kept in trial order: a
 * proposal for trial k is a function of (seed, k, the set of results told so far), never of the
 * order they were told in, of time or of any global state. So a search job survives a restart
 * (or kill -9) by making a new algorithm with the same name, params, view and seed and telling it
 * every finished trial again, in any order; it stores each trial's point when it asks, so the
 * trials still running at the restart are rerun with their stored points, not asked again. With
 * one trial at a time the whole search is then the same as an uninterrupted one; with several,
 * the search job asks trial k once trials 0 to k - parallel are told and tells in trial order
 * (server/job_search.c), so each proposal still depends on the seed, k and parallel alone.
 *
 *   grid       every combination, in a fixed order (algo_grid.c)
 *   random     each trial's point from the view's sampler, drawn at rng_init(seed, trial)
 *   evolution  regularized evolution (Real et al. 2019): {"population": 20, "sample": 5}
 *   tpe        the Tree-structured Parzen Estimator as Optuna's default TPESampler:
 *              {"startup": 10, "candidates": 24, "gamma": 0.1, "prior_weight": 1.0}
 * ../search/README.md says which paper or implementation each follows and where it differs. */

struct search_algo;

/* name: "grid", "random", "evolution" or "tpe"; params: the algorithm's own settings (a JSON
 * object, or NULL for its defaults); unknown keys and values out of range fail with ENG_INVALID,
 * as do dimensions that break the rules above (a parent after its child or not a CHOICE, an
 * empty range, a LOGUNIFORM low <= 0, a step <= 0, more than 2^32 values).
 * view is copied (its dims and ctx must outlive the algorithm). Larger values are better (an
 * objective to minimise is negated by the caller). */
struct search_algo *search_algo_new(const char *name, const json_t *params,
                                    const struct search_view *view, uint64_t seed,
                                    struct eng_error *err);
void search_algo_free(struct search_algo *a);

/* The next point to try, for trial number `trial` (0, 1, 2, ... in order; several may be
 * outstanding at once when trials run in parallel). Returns 0 and fills point (view->n values;
 * an inactive dimension holds a valid value of its own, which the space ignores), or 1 when the
 * algorithm has nothing left to propose (grid exhausted), or -1 with err set. Asking the same
 * trial again with the same results told gives the same point. */
int search_algo_ask(struct search_algo *a, uint64_t trial, double *point, struct eng_error *err);

/* A finished trial's value (point: view->n values, copied). Trials may finish out of order and
 * may be told without having been asked (a replay); telling a trial again replaces its result.
 * A failed trial is told with ok = false (a value that is not finite counts as failed too): it
 * is never a parent and never a model's observation.
 * Returns 0, or -1 with err set (out of memory). */
int search_algo_tell(struct search_algo *a, uint64_t trial, const double *point, double value,
                     bool ok, struct eng_error *err);

/* ---- Early stopping (asha.c) ---------------------------------------------------------------- */

struct search_asha;

/* Rungs at min_epochs * eta^k below max_epochs (a trial that reaches max_epochs is finished, not
 * judged). async = true is ASHA (Li et al. 2020) as Optuna's SuccessiveHalvingPruner decides it:
 * a trial reporting at a rung continues when its value is among the best max(1, floor(n / eta))
 * of the n values that rung has seen so far, itself included (ties continue); the decision is
 * final. async = false is synchronous successive halving (Jamieson and Talwalkar 2016): rung 0
 * waits for all `trials` trials, rung k + 1 for those rung k promoted, and then promotes its best
 * max(1, floor(n / eta)) (ties broken by the lower trial number). min_epochs >= 1, eta >= 2,
 * max_epochs >= min_epochs; trials >= 1 when synchronous (ignored when async). */
struct search_asha *search_asha_new(unsigned min_epochs, unsigned max_epochs, unsigned eta,
                                    bool async, size_t trials, struct eng_error *err);
void search_asha_free(struct search_asha *s);

enum search_asha_decision { SEARCH_ASHA_CONTINUE, SEARCH_ASHA_STOP, SEARCH_ASHA_WAIT };

/* A trial's metric after `epoch` epochs (larger is better; NaN, a diverged run, is the worst),
 * into *decision. CONTINUE: train on; STOP: the trial fell below its rung's cut (and stays
 * stopped); WAIT (synchronous only): it reached a rung whose decision is pending: ask
 * search_asha_poll later. An epoch that is not a rung, or a rung already judged, changes nothing
 * (a stopped trial stays stopped). Returns 0, or -1 with err set: out of memory, a trial number
 * past `trials` (synchronous) or 2^32, or a synchronous trial reporting at a rung past the one
 * still deciding on it. Decisions depend on the order of reports (that is ASHA): to rebuild the
 * state after a restart, report again in the original order. */
int search_asha_report(struct search_asha *s, uint64_t trial, unsigned epoch, double value,
                       enum search_asha_decision *decision, struct eng_error *err);

/* A waiting trial's decision: WAIT while its rung is pending, then CONTINUE or STOP. A trial
 * with no pending or final decision continues. */
enum search_asha_decision search_asha_poll(const struct search_asha *s, uint64_t trial);

/* A trial that will report no more (failed or cancelled): a synchronous rung stops waiting for
 * it, and may decide at once. */
void search_asha_drop(struct search_asha *s, uint64_t trial);

#endif
