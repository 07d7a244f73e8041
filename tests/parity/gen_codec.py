#!/usr/bin/python3
"""Writes the codec fixtures: small encoded images and, next to each, what Pillow decodes from it
as AUGF (tests/unit/fixture.h), already in augserve's channel convention (L -> 1 channel, RGB -> 3,
anything with alpha -> RGBA, EXIF orientation applied as ImageOps.exif_transpose does).

Run with Debian's Python, which has Pillow 9.4 (the reference):
    /usr/bin/python3 tests/parity/gen_codec.py [out_dir]
out_dir defaults to tests/parity/fixtures/codec. The output is deterministic.

Where augserve deliberately differs from Pillow, the expected array says so in a comment:
16-bit greyscale keeps the high byte (Pillow's convert("L") clips).

Embedded ICC profiles: augserve keeps the stored values as Pillow does (color=keep), so the
expected arrays of the tagged files (*_icc_*) are Pillow's decodes too, and the profiles they
carry are written beside them (adobe.icc, p3.icc, srgb.icc, gray.icc) for the C tests to compare
with what the decoder hands on. Their conversion to sRGB (color=srgb) is checked against libvips'
own icc_transform by tests/unit/test_codec.c; the files NAME-srgb.augf hold ImageCms's (lcms, 8-bit)
conversion as a second, independent reference, a few levels off libvips' float pipeline.
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageCms, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augf  # noqa: E402

# Small and not square, so a wrong rotation changes the shape; 40x30 is not a multiple of the
# JPEG MCU either, so partial blocks at the edges are exercised.
W, H = 40, 30


def pattern(w=W, h=H):
    """Gradients along x (red) and y (green), so any flip or rotation shows; a checkerboard in
    blue gives the codecs sharp edges."""
    y, x = np.mgrid[0:h, 0:w]
    r = x * 255 // (w - 1)
    g = y * 255 // (h - 1)
    b = ((x // 5 + y // 5) % 2) * 180 + 40
    return np.stack([r, g, b], -1).astype(np.uint8)


def alpha(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    return ((x + y) * 255 // (w + h - 2)).astype(np.uint8)


def ours(im):
    """Pillow's decode in augserve's convention: 1, 3 or 4 channels, alpha -> RGBA."""
    has_trns = "transparency" in im.info
    if im.mode == "P":
        im = im.convert("RGBA" if has_trns else "RGB")
    elif im.mode in ("L", "RGB") and has_trns:
        im = im.convert("RGBA")
    elif im.mode == "LA":
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    assert im.mode in ("L", "RGB", "RGBA"), im.mode
    return np.asarray(im)


def decode(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# --- PNGs Pillow cannot write: 16-bit colour and low bit depths --------------------------------

def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width, height, depth, colour_type, rows):
    """rows: bytes of each unfiltered scanline (filter type 0 is prepended)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + r for r in rows), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


# --- BMP with BI_BITFIELDS (Pillow writes only BI_RGB) ----------------------------------------

def bmp_565_top_down(rgb):
    """16-bit 5-6-5 BI_BITFIELDS, top-down (negative height): rows padded to 4 bytes."""
    h, w, _ = rgb.shape
    r = rgb[:, :, 0].astype(np.uint16) >> 3
    g = rgb[:, :, 1].astype(np.uint16) >> 2
    b = rgb[:, :, 2].astype(np.uint16) >> 3
    px = (r << 11) | (g << 5) | b
    stride = (w * 2 + 3) & ~3
    rows = b"".join(px[y].astype("<u2").tobytes().ljust(stride, b"\0") for y in range(h))
    info = struct.pack("<IiiHHIIiiII", 40, w, -h, 1, 16, 3, len(rows), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    offset = 14 + len(info) + len(masks)
    head = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset)
    return head + info + masks + rows


# --- ICC profiles (v2), written from the published numbers so the fixtures need no profile file
# from elsewhere: Adobe RGB (1998) and Display P3 (matrix/TRC), a gamma 2.2 greyscale one, and a
# small CMYK one (a lut16 table) ------------------------------------------------------------------

def s15(v):
    return struct.pack(">i", int(round(v * 65536)))


def xyz_tag(x, y, z):
    return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)


def desc_tag(text):
    t = text.encode() + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts.
    return (b"desc\0\0\0\0" + struct.pack(">I", len(t)) + t + struct.pack(">II", 0, 0) +
            struct.pack(">HB", 0, 0) + b"\0" * 67)


def profile(device_class, space, pcs, tags):
    """A v2.1 profile: the 128-byte header, the tag table, the tags (each padded to 4 bytes)."""
    table = b""
    body = b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        data = data + b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) +
              device_class + space + pcs + b"\0" * 12 + b"acsp" + b"\0" * 24 +
              struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


D50 = (0.96420, 1.0, 0.82491)


def matrix_profile(name, colorants, trc):
    """An RGB display profile: colorants are the D50-adapted XYZ of red, green and blue."""
    tags = [(b"desc", desc_tag("augserve test: " + name)),
            (b"cprt", b"text\0\0\0\0" + b"No copyright, test data\0"),
            (b"wtpt", xyz_tag(*D50))]
    tags += [(sig, xyz_tag(*xyz)) for sig, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants)]
    tags += [(sig, trc) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    return profile(b"mntr", b"RGB ", b"XYZ ", tags)


def adobe_like_profile():
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"  # 563/256 = 2.199
    return matrix_profile("Adobe RGB (1998) primaries", [(0.60974, 0.31111, 0.01947),
                                                         (0.20528, 0.62567, 0.06087),
                                                         (0.14919, 0.06322, 0.74457)], gamma)


def display_p3_profile():
    """DCI-P3 primaries with D65 white (Bradford-adapted to D50) and the sRGB tone curve, as
    Apple's Display P3, the colour space of phone photos."""
    x = np.arange(1024) / 1023
    srgb = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    curve = b"curv\0\0\0\0" + struct.pack(">I", 1024) + np.round(srgb * 65535).astype(">u2").tobytes()
    return matrix_profile("Display P3", [(0.51512, 0.24120, -0.00105),
                                         (0.29198, 0.69225, 0.04189),
                                         (0.15710, 0.06657, 0.78407)], curve)


def gray_profile():
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
    return profile(b"mntr", b"GRAY", b"XYZ ", [
        (b"desc", desc_tag("augserve test: gray gamma 2.2")),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test data\0"),
        (b"wtpt", xyz_tag(*D50)),
        (b"kTRC", gamma)])


def cmyk_profile(grid=5):
    """CMYK to Lab through a lut16 table of `grid` points a side (fine enough that lcms's and
    libvips' interpolations agree): each point's Lab is that of the RGB Pillow's convert("RGB")
    makes of it, a little redder, so the conversion shows."""
    points = []
    for cmyk in np.ndindex(grid, grid, grid, grid):  # the first channel varies slowest
        c, m, y, k = (v / (grid - 1) for v in cmyk)
        rgb = np.array([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)]) * 255
        points.append(np.clip(np.round(rgb) + [25, 0, 0], 0, 255).astype(np.uint8))
    lab = ImageCms.applyTransform(
        Image.fromarray(np.array(points, np.uint8).reshape(1, -1, 3)),
        ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"),
                                "RGB", "LAB"))
    lab = np.asarray(lab).reshape(-1, 3)
    # v2 16-bit Lab: L 0..100 as 0..0xFF00, a and b -128..127.996 as 0..0xFFFF (0 at 0x8000);
    # Pillow's 8-bit LAB has L * 255 / 100 and a, b as signed bytes.
    a, b = (lab[:, i].view(np.int8).astype(np.float64) for i in (1, 2))
    clut = np.stack([lab[:, 0] / 255 * 0xFF00, (a + 128) * 256, (b + 128) * 256], -1)
    identity = np.array([0, 65535], ">u2").tobytes()
    lut = (b"mft2\0\0\0\0" + bytes([4, 3, grid, 0]) +
           b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1)) + struct.pack(">HH", 2, 2) +
           identity * 4 + np.round(clut).astype(">u2").tobytes() + identity * 3)
    return profile(b"prtr", b"CMYK", b"Lab ", [
        (b"desc", desc_tag("augserve test: CMYK")),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test data\0"),
        (b"wtpt", xyz_tag(*D50)),
        # One table for every intent: libvips refuses a profile without its intent's.
        (b"A2B0", lut),
        (b"A2B1", lut),
        (b"A2B2", lut)])


def to_srgb(im, icc):
    """What a colour-managed decoder shows: the embedded profile to sRGB, relative colorimetric
    (libvips' default intent). im is in the profile's colour space (RGB or CMYK)."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    dst = ImageCms.createProfile("sRGB")
    return ImageCms.profileToProfile(im, src, dst, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                     inPlace=False, outputMode="RGB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures", "codec")
    os.makedirs(out, exist_ok=True)
    total = 0

    def emit(name, data, expected):
        nonlocal total
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        stem = name.rsplit(".", 1)[0]
        augf.write(os.path.join(out, stem + ".augf"), expected)
        total += len(data) + 16 + expected.size

    def save(im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    rgb = Image.fromarray(pattern())
    rgba = Image.fromarray(np.dstack([pattern(), alpha()]))
    gray = rgb.convert("L")

    # JPEG: Pillow's defaults (quality 75 unless given, 4:2:0) through libjpeg-turbo.
    for name, im, kw in [
        ("jpeg_baseline.jpg", rgb, dict(quality=90)),
        ("jpeg_progressive.jpg", rgb, dict(quality=85, progressive=True)),
        ("jpeg_gray.jpg", gray, dict(quality=90)),
        ("jpeg_cmyk.jpg", rgb.convert("CMYK"), dict(quality=90)),
    ]:
        data = save(im, "JPEG", **kw)
        emit(name, data, ours(decode(data)))
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = save(rgb, "JPEG", quality=90, exif=exif.tobytes())
        emit("jpeg_exif%d.jpg" % orientation, data, ours(ImageOps.exif_transpose(decode(data))))
    # Tagged files: Pillow's decode is the expectation (the profile is left alone); the profiles
    # are written out for the C tests, and ImageCms's conversion to sRGB as NAME-srgb.augf.
    profiles = {"adobe": adobe_like_profile(), "p3": display_p3_profile(), "gray": gray_profile(),
                "cmyk": cmyk_profile()}
    # lcms stamps the creation time (and an MD5 ID over it): zero both for a stable fixture.
    srgb_icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    srgb_icc[24:36] = bytes(12)
    srgb_icc[84:100] = bytes(16)
    profiles["srgb"] = bytes(srgb_icc)
    for name, icc in profiles.items():
        with open(os.path.join(out, name + ".icc"), "wb") as f:
            f.write(icc)

    def emit_tagged(name, data, icc):
        im = decode(data)
        assert im.info["icc_profile"] == icc, name
        emit(name, data, ours(im))
        augf.write(os.path.join(out, name.rsplit(".", 1)[0] + "-srgb.augf"),
                   np.asarray(to_srgb(im, icc)))

    for name in ("adobe", "p3"):
        emit_tagged("jpeg_icc_%s.jpg" % name, save(rgb, "JPEG", quality=90,
                                                   icc_profile=profiles[name]), profiles[name])
        emit_tagged("png_icc_%s.png" % name, save(rgb, "PNG", icc_profile=profiles[name]),
                    profiles[name])
    data = save(rgb, "JPEG", quality=90, icc_profile=profiles["srgb"])
    emit("jpeg_icc_srgb.jpg", data, ours(decode(data)))  # sRGB: nothing to convert
    data = save(gray, "PNG", icc_profile=profiles["gray"])
    emit("png_icc_gray.png", data, ours(decode(data)))  # greyscale stays greyscale
    # CMYK with K, so Pillow's formula is exercised (convert("CMYK") gives K = 0): Adobe's
    # inverted JPEG, with a CMYK profile that convert("RGB") ignores, and a plain TIFF.
    y, x = np.mgrid[0:H, 0:W]
    cmyk = Image.fromarray(np.stack([x * 6, y * 8, (x + y) * 3, (x * y) % 200], -1)
                           .astype(np.uint8), "CMYK")
    emit_tagged("jpeg_cmyk_icc.jpg", save(cmyk, "JPEG", quality=90, icc_profile=profiles["cmyk"]),
                profiles["cmyk"])
    emit("tiff_cmyk.tif", save(cmyk, "TIFF", compression="tiff_deflate"),
         ours(decode(save(cmyk, "TIFF", compression="tiff_deflate"))))

    # PNG: lossless, so the expected pixels are exact.
    emit("png_rgb.png", save(rgb, "PNG"), pattern())
    emit("png_rgba.png", save(rgba, "PNG"), np.asarray(rgba))
    emit("png_l.png", save(gray, "PNG"), np.asarray(gray))
    la = Image.merge("LA", (gray, Image.fromarray(alpha())))
    data = save(la, "PNG")
    emit("png_la.png", data, ours(decode(data)))
    pal = rgb.quantize(16, dither=Image.Dither.NONE)
    trns = bytes([0, 128] + [255] * 14)  # entry 0 transparent, entry 1 half
    data = save(pal, "PNG", transparency=trns)
    emit("png_palette_trns.png", data, ours(decode(data)))
    data = save(gray, "PNG", transparency=int(np.asarray(gray)[0, 0]))
    emit("png_l_trns.png", data, ours(decode(data)))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = save(rgb, "PNG", exif=exif.tobytes())
    emit("png_exif6.png", data, ours(ImageOps.exif_transpose(decode(data))))

    # 16-bit: Pillow reads RGB as the high byte of each sample ("RGB;16B"); for greyscale it
    # gives "I;16", and augserve keeps the high byte there too (convert("L") would clip).
    y, x = np.mgrid[0:H, 0:W]
    deep = np.stack([x * 1600 + y * 7, y * 2100 + 300, (x * y * 53) % 65536], -1).astype(">u2")
    data = raw_png(W, H, 16, 2, [deep[i].tobytes() for i in range(H)])
    expected = ours(decode(data))
    assert (expected == (deep.astype(np.uint32) >> 8)).all()
    emit("png_rgb16.png", data, expected)
    gray16 = deep[:, :, 0].copy()
    data = raw_png(W, H, 16, 0, [gray16[i].tobytes() for i in range(H)])
    im16 = decode(data)
    assert im16.mode in ("I;16", "I;16B", "I"), im16.mode
    assert (np.asarray(im16).astype(np.uint32) == gray16).all()
    emit("png_gray16.png", data, (gray16 >> 8).astype(np.uint8))
    # 4-bit greyscale: scaled by 17, as Pillow's "L;4" unpacker does.
    g4 = ((x + y) % 16).astype(np.uint8)
    rows = [bytes((g4[i, 2 * j] << 4) | g4[i, 2 * j + 1] for j in range(W // 2)) for i in range(H)]
    data = raw_png(W, H, 4, 0, rows)
    emit("png_gray4.png", data, ours(decode(data)))

    # libvips formats.
    # Lossless, but libwebp may rewrite the colour of fully transparent pixels: compare with
    # the decode, not the source.
    data = save(rgba, "WEBP", lossless=True)
    emit("webp_lossless.webp", data, ours(decode(data)))
    data = save(rgb, "WEBP", quality=80)
    emit("webp_lossy.webp", data, ours(decode(data)))
    frame0 = rgb.quantize(32, dither=Image.Dither.NONE)
    frame1 = Image.fromarray(255 - pattern()).quantize(32, dither=Image.Dither.NONE)
    data = save(frame0, "GIF", save_all=True, append_images=[frame1], duration=100, loop=0)
    check = Image.open(io.BytesIO(data))
    assert check.n_frames == 2
    emit("gif_anim.gif", data, ours(decode(data)))
    data = save(rgb, "TIFF", compression="tiff_deflate")
    emit("tiff_rgb.tif", data, pattern())
    # Pillow 9.4 already applies a TIFF's orientation in load() (libtiff path) and then
    # exif_transpose applies it a second time; augserve applies it once, as later Pillows do.
    data = save(rgb, "TIFF", compression="tiff_deflate", exif=exif.tobytes())
    once = decode(data)
    assert once.size == (H, W)
    assert (np.asarray(once) == np.asarray(rgb.transpose(Image.Transpose.ROTATE_270))).all()
    emit("tiff_exif6.tif", data, np.asarray(once))

    # BMP: decoded by augserve itself (libvips reads BMP only through ImageMagick).
    emit("bmp_rgb24.bmp", save(rgb, "BMP"), pattern())
    data = save(pal, "BMP")
    emit("bmp_pal8.bmp", data, ours(decode(data)))
    data = save(gray, "BMP")
    emit("bmp_gray8.bmp", data, ours(decode(data)))
    data = save(rgb.convert("1"), "BMP")
    emit("bmp_1bit.bmp", data, ours(decode(data)))
    data = save(rgba, "BMP")  # 32-bit BI_RGB: Pillow reads it as BGRX, alpha ignored
    emit("bmp_32.bmp", data, ours(decode(data)))
    data = bmp_565_top_down(pattern())
    emit("bmp_565.bmp", data, ours(decode(data)))

    print("wrote %s (%d bytes)" % (out, total))


if __name__ == "__main__":
    main()
