/* What an Ogg file's logical streams hold, read from its pages before any decoder sees it, so
 * that each file goes to the one library made for its codec (audio.c) and nothing else is
 * decoded. Private to engine/audio/.
 *
 * A page counts as libogg finds one: "OggS", version 0, a header, a segment table and the body
 * that table announces, all inside the data, and a right CRC-32. Every such page counts,
 * wherever it starts, even inside another page's body: a reader that seeks (libopusfile) syncs
 * from wherever it lands, so a page a plain walk from the start would step over can still be
 * read. Each beginning-of-stream page starts a stream, named by its first packet. */
#ifndef AUGSERVE_ENGINE_AUDIO_OGG_PROBE_H
#define AUGSERVE_ENGINE_AUDIO_OGG_PROBE_H

#ifndef AUGENGINE_AUDIO_INTERNAL
#error "audio/ogg_probe.h is private to engine/audio/"
#endif

#include <stdbool.h>
#include <stddef.h>

struct ogg_probe {
    size_t pages;               /* pages found */
    size_t opus, vorbis, other; /* streams whose first packet is OpusHead, \x01vorbis, other */
    const char *other_name;     /* the first other stream's codec ("FLAC", "Speex", ...,
                                 * "unknown"), NULL when there is none */
    bool overrun;               /* the search gave up: the data is mostly false page starts */
};

/* Finds the pages of the n bytes at p (which need not start with a page); reads nothing past
 * p + n. Bytes that only look like page starts cost a checksum each, and a file of nothing else
 * could cost one per byte, 64 KB each: the search stops once it has checked three times the
 * data's size (a real file checks each byte once) and sets overrun. */
void ogg_probe_scan(const unsigned char *p, size_t n, struct ogg_probe *out);

/* The offset of the first page beginning a stream at or after from, or n when there is none
 * (or the search stops as ogg_probe_scan's would). */
size_t ogg_probe_stream_at(const unsigned char *p, size_t n, size_t from);

#endif
