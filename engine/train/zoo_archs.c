/* The zoo's architectures, each transcribing its reference PyTorch code (train/train.h's table):
 * the same modules in the same order, under the same state_dict names. */
#include <stdio.h>

#include "train/internal.h"

void zoo_small_cnn(struct zoo *z, const struct train_zoo_spec *spec)
{
    static const int width[3] = {32, 64, 128};
    char h[ZOO_NAME] = "input", m[ZOO_NAME];
    int in = spec->channels;
    for (int i = 0; i < 3; i++) {
        snprintf(m, sizeof m, "conv%d", i + 1);
        zoo_conv(z, h, h, m, in, width[i], 3, 1, 1);
        snprintf(m, sizeof m, "bn%d", i + 1);
        zoo_bn(z, h, h, m, width[i]);
        snprintf(m, sizeof m, "relu%d", i + 1);
        zoo_act(z, h, h, m);
        if (i < 2) {
            snprintf(m, sizeof m, "pool%d", i + 1);
            zoo_maxpool(z, h, h, m, 2, 2, 0);
        }
        in = width[i];
    }
    zoo_head(z, h, "fc", in, spec->classes);
}

/* Convolution i of a ResNet block (conv<i>, bn<i> and, when act, relu<i>) on h. */
static void conv_bn(struct zoo *z, char *h, const char *block, int i, int in, int out, int k,
                    int stride, bool act)
{
    char m[ZOO_NAME], leaf[16];
    snprintf(leaf, sizeof leaf, "conv%d", i);
    zoo_path(m, block, leaf);
    zoo_conv(z, h, h, m, in, out, k, stride, k / 2);
    snprintf(leaf, sizeof leaf, "bn%d", i);
    zoo_path(m, block, leaf);
    zoo_bn(z, h, h, m, out);
    if (!act) return;
    snprintf(leaf, sizeof leaf, "relu%d", i);
    zoo_path(m, block, leaf);
    zoo_act(z, h, h, m);
}

/* relu(h + shortcut(x)): x itself, or a 1x1 strided convolution and BatchNorm (modules
 * <shortcut>.0 and .1) where the shape changes. */
static void residual(struct zoo *z, char *h, const char *x, const char *block, int in, int out,
                     int stride, const char *shortcut)
{
    char m[ZOO_NAME], s[ZOO_NAME], proj[ZOO_NAME];
    snprintf(s, sizeof s, "%s", x);
    if (stride != 1 || in != out) {
        zoo_path(proj, block, shortcut);
        zoo_path(m, proj, "0");
        zoo_conv(z, x, s, m, in, out, 1, stride, 0);
        zoo_path(m, proj, "1");
        zoo_bn(z, s, s, m, out);
    }
    zoo_drop_path(z, h, block);
    zoo_path(m, block, "add");
    zoo_add(z, h, s, h, m);
    zoo_path(m, block, "relu");
    zoo_act(z, h, h, m);
}

/* The two-convolution block of akamaster's (option B, shortcut "shortcut") and torchvision's
 * (shortcut "downsample"): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). */
static void basic_block(struct zoo *z, char *h, const char *block, int in, int planes, int stride,
                        const char *shortcut)
{
    char x[ZOO_NAME];
    snprintf(x, sizeof x, "%s", h);
    conv_bn(z, h, block, 1, in, planes, 3, stride, true);
    conv_bn(z, h, block, 2, planes, planes, 3, 1, false);
    residual(z, h, x, block, in, planes, stride, shortcut);
}

void zoo_resnet_cifar(struct zoo *z, const struct train_zoo_spec *spec)
{
    int n = (spec->depth - 2) / 6, in = 16;
    char h[ZOO_NAME] = "input", block[ZOO_NAME];
    z->blocks = 3 * n;
    zoo_conv(z, h, h, "conv1", spec->channels, 16, 3, 1, 1);
    zoo_bn(z, h, h, "bn1", 16);
    zoo_act(z, h, h, "relu");
    for (int stage = 0; stage < 3; stage++) {
        int planes = 16 << stage;
        for (int i = 0; i < n; i++) {
            snprintf(block, sizeof block, "layer%d.%d", stage + 1, i);
            basic_block(z, h, block, in, planes, i == 0 && stage > 0 ? 2 : 1, "shortcut");
            in = planes;
        }
    }
    zoo_head(z, h, "linear", in, spec->classes);
}

/* A pre-activation block of xternalz's WRN, or of kekmodel's (FixMatch) when z->leaky; see
 * train.h. first_stage: the block that activates before its shortcut in kekmodel's. */
static void wrn_block(struct zoo *z, char *h, const char *block, int in, int out, int stride,
                      bool fixmatch, bool first_stage)
{
    char m[ZOO_NAME], a[ZOO_NAME], s[ZOO_NAME];
    bool equal = in == out;
    /* kekmodel's blocks that change width outside the first stage compute relu1(bn1(x)) and
     * drop it: conv1 and the shortcut read x itself. That bn1 is left out (it has no effect and
     * would get no gradient), so its state_dict keys are the only ones PyTorch has and this
     * graph lacks: a load into PyTorch leaves them at their initial values. */
    bool raw = fixmatch && !equal && !first_stage;
    if (raw) {
        snprintf(a, sizeof a, "%s", h);
    } else {
        zoo_path(m, block, "bn1");
        zoo_bn(z, h, a, m, in);
        zoo_path(m, block, "relu1");
        zoo_act(z, a, a, m);
    }
    /* The residual branch reads the activated x when the width changes, x itself otherwise. */
    zoo_path(m, block, "conv1");
    zoo_conv(z, a, s, m, in, out, 3, stride, 1);
    zoo_path(m, block, "bn2");
    zoo_bn(z, s, s, m, out);
    zoo_path(m, block, "relu2");
    zoo_act(z, s, s, m);
    zoo_path(m, block, "conv2");
    zoo_conv(z, s, s, m, out, out, 3, 1, 1);
    zoo_drop_path(z, s, block);
    if (!equal) {
        zoo_path(m, block, "convShortcut");
        zoo_conv(z, a, a, m, in, out, 1, stride, 0);
        zoo_path(m, block, "add");
        zoo_add(z, a, s, h, m);
    } else {
        zoo_path(m, block, "add");
        zoo_add(z, h, s, h, m);
    }
}

void zoo_wrn(struct zoo *z, const struct train_zoo_spec *spec)
{
    int n = (spec->depth - 4) / 6, k = spec->width;
    int widths[4] = {16, 16 * k, 32 * k, 64 * k};
    char h[ZOO_NAME] = "input", block[ZOO_NAME];
    z->blocks = 3 * n;
    zoo_conv(z, h, h, "conv1", spec->channels, 16, 3, 1, 1);
    for (int stage = 0; stage < 3; stage++)
        for (int i = 0; i < n; i++) {
            snprintf(block, sizeof block, "block%d.layer.%d", stage + 1, i);
            wrn_block(z, h, block, i == 0 ? widths[stage] : widths[stage + 1], widths[stage + 1],
                      i == 0 && stage > 0 ? 2 : 1, spec->fixmatch, stage == 0);
        }
    zoo_bn(z, h, h, "bn1", widths[3]);
    zoo_act(z, h, h, "relu");
    zoo_head(z, h, "fc", widths[3], spec->classes);
}

/* torchvision's Bottleneck (expansion 4, the stride on its 3x3). */
static void bottleneck(struct zoo *z, char *h, const char *block, int in, int planes, int stride)
{
    char x[ZOO_NAME];
    snprintf(x, sizeof x, "%s", h);
    conv_bn(z, h, block, 1, in, planes, 1, 1, true);
    conv_bn(z, h, block, 2, planes, planes, 3, stride, true);
    conv_bn(z, h, block, 3, planes, 4 * planes, 1, 1, false);
    residual(z, h, x, block, in, 4 * planes, stride, "downsample");
}

void zoo_resnet(struct zoo *z, const struct train_zoo_spec *spec)
{
    static const struct {
        int depth, blocks[4];
        bool bottleneck;
    } layouts[] = {
        {18, {2, 2, 2, 2}, false},  {34, {3, 4, 6, 3}, false},  {50, {3, 4, 6, 3}, true},
        {101, {3, 4, 23, 3}, true}, {152, {3, 8, 36, 3}, true},
    };
    size_t l = 0;
    while (layouts[l].depth != spec->depth)
        l++; /* train_zoo_parse allows only these */
    bool is_bottleneck = layouts[l].bottleneck;
    for (int stage = 0; stage < 4; stage++)
        z->blocks += layouts[l].blocks[stage];
    char h[ZOO_NAME] = "input", block[ZOO_NAME];
    zoo_conv(z, h, h, "conv1", spec->channels, 64, 7, 2, 3);
    zoo_bn(z, h, h, "bn1", 64);
    zoo_act(z, h, h, "relu");
    zoo_maxpool(z, h, h, "maxpool", 3, 2, 1);
    int in = 64;
    for (int stage = 0; stage < 4; stage++) {
        int planes = 64 << stage;
        for (int i = 0; i < layouts[l].blocks[stage]; i++) {
            snprintf(block, sizeof block, "layer%d.%d", stage + 1, i);
            int stride = i == 0 && stage > 0 ? 2 : 1;
            if (is_bottleneck)
                bottleneck(z, h, block, in, planes, stride);
            else
                basic_block(z, h, block, in, planes, stride, "downsample");
            in = is_bottleneck ? 4 * planes : planes;
        }
    }
    zoo_head(z, h, "fc", in, spec->classes);
}
