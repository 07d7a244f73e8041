/* The command-line tools beside the server, one file per family: cli_augment.c, cli_bench.c,
 * cli_eval.c, cli_data.c, cli_search.c (cli.c holds what they share). Each takes the arguments
 * after its name and returns the process exit status (2 for usage errors). */
#ifndef AUGSERVE_CLI_H
#define AUGSERVE_CLI_H

/* augserve augment -p POLICY [-s SEED] [-n SAMPLES] [-f FORMAT] [-q QUALITY] [-o PATTERN] IN... */
int cli_augment(int argc, char **argv);

/* augserve augment-audio -p POLICY [-s SEED] [-n SAMPLES] [-f wav|flac|features|png]
 *                        [-o PATTERN] [--noise FILE]... [--rir FILE]... [--MEL-FIELD V]... IN... */
int cli_augment_audio(int argc, char **argv);

/* augserve bench augment -p POLICY [--size PIXELS] [--seconds S] [--image FILE] [--boxes N]
 * augserve bench infer --model DIR|FILE [--batch B] [--seconds S] [--threads T]
 * augserve bench audio -p POLICY [--seconds S] [--audio FILE]
 * augserve bench similarity --model DIR [--size PIXELS] [--batch B] [--seconds S] [--threads T]
 * augserve bench loader --dataset DIR --policy P [--split S] [--batch B] [--threads T]
 *                       [--seconds S] [--crop N]
 * augserve bench train [--arch A] [--batch B] [--seconds S] [--threads T] [--classes N]
 *                      [--size S] [--optimizer sgd|adamw]
 *                      [--dataset DIR --policy P [--split S] [--loader-threads L]] */
int cli_bench(int argc, char **argv);

/* augserve eval-2afc --dataset DIR --metric lpips:MODEL|ssim|ms_ssim|psnr|l2 [--threads T] */
int cli_eval_2afc(int argc, char **argv);

/* augserve dataset import PATH --out DIR [--name NAME] [--image-size N] [--threads T]
 * augserve dataset show DIR */
int cli_dataset(int argc, char **argv);

/* augserve search --server URL [--key KEY] [--params FILE|-] [--space FILE|NAME] [--algorithm A]
 *                 [--objective O] [--trials N] [--seconds S] [--parallel P] [--dataset ID]
 *                 [--model M] [--split VAL] [--seed S] [--save-as NAME] [--detach]
 * (cli_search.c: a client of a running server, over libcurl) */
int cli_search(int argc, char **argv);

#endif
