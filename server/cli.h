/* The command-line tools beside the server. Each takes the arguments after its name and returns
 * the process exit status (2 for usage errors). */
#ifndef AUGSERVE_CLI_H
#define AUGSERVE_CLI_H

/* augserve augment -p POLICY [-s SEED] [-n SAMPLES] [-f FORMAT] [-q QUALITY] [-o PATTERN] IN... */
int cli_augment(int argc, char **argv);

/* augserve bench augment -p POLICY [--size PIXELS] [--seconds S] [--image FILE]
 * augserve bench infer --model DIR|FILE [--batch B] [--seconds S] [--threads T] */
int cli_bench(int argc, char **argv);

#endif
