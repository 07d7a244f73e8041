#include "audio/ogg_probe.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* The page header (RFC 3533, section 6): "OggS", version, header type, granule position (8
 * bytes), serial number (4), page sequence number (4), CRC (4), segment count, then as many
 * lacing values, whose sum is the body's length. */
#define HEADER_BYTES   27
#define VERSION_AT     4
#define TYPE_AT        5
#define CRC_AT         22
#define SEGMENTS_AT    26
#define TYPE_CONTINUED 0x01 /* the body starts with the rest of a packet from the page before */
#define TYPE_BOS       0x02 /* the first page of a logical stream */

/* The CRC-32 of Ogg: polynomial 0x04c11db7, most significant bit first, initial value 0, no
 * final xor, over the page with its CRC field zeroed. A byte at a time, from a table built
 * once. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i << 24;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
        crc_table[i] = crc;
    }
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc << 8 ^ crc_table[crc >> 24 ^ p[i]];
    return crc;
}

static bool crc_ok(const unsigned char *page, size_t length)
{
    static const unsigned char zero[4] = {0};
    uint32_t crc = crc_update(0, page, CRC_AT);
    crc = crc_update(crc, zero, sizeof zero);
    crc = crc_update(crc, page + CRC_AT + 4, length - CRC_AT - 4);
    uint32_t want = (uint32_t)page[CRC_AT] | (uint32_t)page[CRC_AT + 1] << 8 |
                    (uint32_t)page[CRC_AT + 2] << 16 | (uint32_t)page[CRC_AT + 3] << 24;
    return crc == want;
}

static size_t lacing_sum(const unsigned char *lacing, size_t from, size_t to)
{
    size_t sum = 0;
    for (size_t i = from; i < to; i++)
        sum += lacing[i];
    return sum;
}

/* A search for pages from at on, spending at most budget bytes of reading (headers, segment
 * tables and checksummed pages). */
struct search {
    const unsigned char *p;
    size_t n, at;
    size_t budget;
    bool overrun;
};

static struct search search_start(const unsigned char *p, size_t n, size_t from)
{
    pthread_once(&crc_once, crc_init);
    size_t budget = n > (SIZE_MAX - 65536) / 3 ? SIZE_MAX : 3 * n + 65536;
    return (struct search){.p = p, .n = n, .at = from, .budget = budget};
}

static bool spend(struct search *s, size_t bytes)
{
    if (bytes > s->budget) {
        s->overrun = true;
        return false;
    }
    s->budget -= bytes;
    return true;
}

/* Moves s->at to the next page at or after it and returns the page's length, or returns 0 when
 * there is none (or the budget is spent). */
static size_t next_page(struct search *s)
{
    for (; s->n - s->at >= HEADER_BYTES; s->at++) {
        const unsigned char *q = memchr(s->p + s->at, 'O', s->n - s->at - HEADER_BYTES + 1);
        if (!q) break;
        s->at = (size_t)(q - s->p);
        if (memcmp(q, "OggS", 4) != 0) continue;
        size_t left = s->n - s->at, header = HEADER_BYTES + (size_t)q[SEGMENTS_AT];
        if (left < header) continue;
        if (!spend(s, header)) return 0;
        size_t length = header + lacing_sum(q + HEADER_BYTES, 0, q[SEGMENTS_AT]);
        if (left < length) continue;
        if (!spend(s, length)) return 0;
        if (q[VERSION_AT] == 0 && crc_ok(q, length)) return length;
    }
    s->at = s->n;
    return 0;
}

/* The index past the last segment of the packet starting at segment i: a lacing value of 255
 * goes on into the next segment, any other ends the packet (one whose table ends on 255 goes on
 * into the next page). */
static size_t packet_end(const unsigned char *lacing, size_t i, size_t segments)
{
    while (i < segments && lacing[i] == 255)
        i++;
    return i < segments ? i + 1 : segments;
}

static bool starts_with(const unsigned char *p, size_t n, const char *magic, size_t len)
{
    return n >= len && memcmp(p, magic, len) == 0;
}

/* The other codecs' identification headers, so a refusal names what was sent. */
static const char *other_codec(const unsigned char *p, size_t n)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *name;
    } known[] = {
        {"\x7f"
         "FLAC",
         5, "FLAC"},
        {"Speex   ", 8, "Speex"},
        {"\x80theora", 7, "Theora"},
        {"fishead", 8, "Skeleton"}, /* with its NUL */
        {"CELT    ", 8, "CELT"},
        {"PCM     ", 8, "PCM"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (starts_with(p, n, known[i].magic, known[i].len)) return known[i].name;
    return "unknown";
}

/* Names the stream a beginning-of-stream page starts by its first packet, as much of it as this
 * page holds (the identification headers are far shorter than a page). A page marked as
 * continuing a packet starts with that packet's tail, which libogg drops from a new stream. */
static void probe_stream(const unsigned char *page, struct ogg_probe *out)
{
    size_t segments = page[SEGMENTS_AT];
    const unsigned char *lacing = page + HEADER_BYTES;
    size_t first = page[TYPE_AT] & TYPE_CONTINUED ? packet_end(lacing, 0, segments) : 0;
    size_t end = packet_end(lacing, first, segments);
    const unsigned char *packet = lacing + segments + lacing_sum(lacing, 0, first);
    size_t length = lacing_sum(lacing, first, end);
    if (starts_with(packet, length, "OpusHead", 8))
        out->opus++;
    else if (starts_with(packet, length, "\x01vorbis", 7))
        out->vorbis++;
    else if (out->other++ == 0)
        out->other_name = other_codec(packet, length);
}

void ogg_probe_scan(const unsigned char *p, size_t n, struct ogg_probe *out)
{
    *out = (struct ogg_probe){0};
    struct search s = search_start(p, n, 0);
    /* On by one byte, not by the page: another page may start inside this one. */
    for (; next_page(&s) > 0; s.at++) {
        out->pages++;
        if (p[s.at + TYPE_AT] & TYPE_BOS) probe_stream(p + s.at, out);
    }
    out->overrun = s.overrun;
}

size_t ogg_probe_stream_at(const unsigned char *p, size_t n, size_t from)
{
    struct search s = search_start(p, n, from);
    for (; next_page(&s) > 0; s.at++)
        if (p[s.at + TYPE_AT] & TYPE_BOS) return s.at;
    return n;
}
