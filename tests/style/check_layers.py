#!/usr/bin/env python3
"""Holds the engine's includes to the dependency direction its CMake link lines state.

engine/CMakeLists.txt gives each area (engine/<area>/) one library, augengine_<area>, linked to
the areas it may use. An area may include its own headers and those of the areas it reaches
through those links, nothing else: a lower area never includes a higher one. A private header
(<area>/internal.h and the like, guarded by AUGENGINE_<AREA>_INTERNAL) is included by its own
area only, or by the areas its guard also names (nn/internal.h admits train). Code outside the engine (server/, handlers/, tests/) uses public headers only.

usage: check_layers.py SOURCE_DIR    exits 1 and names every include that breaks a rule
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else '.'
engine = os.path.join(root, 'engine')
cmake = open(os.path.join(engine, 'CMakeLists.txt')).read()

# The direct links of each area, from target_link_libraries(augengine_<area> ...).
links = {}
for name, args in re.findall(r'target_link_libraries\(\s*augengine_(\w+)\s(.*?)\)', cmake, re.S):
    links.setdefault(name, set()).update(re.findall(r'\baugengine_(\w+)', args))
areas = sorted(d for d in os.listdir(engine) if os.path.isdir(os.path.join(engine, d)))
problems = []
for area in areas:
    if area not in links and any(f.endswith('.c') for f in os.listdir(os.path.join(engine, area))):
        problems.append('engine/%s has sources but no augengine_%s library' % (area, area))


def reach(area):
    """The areas area may include: itself and everything its links reach."""
    seen, todo = set(), [area]
    while todo:
        a = todo.pop()
        if a not in seen:
            seen.add(a)
            todo.extend(links.get(a, ()))
    return seen


def private(header):
    """The areas a private header admits, from its internal guard (`#ifndef AUGENGINE_NN_INTERNAL`,
    or `#if !defined(AUGENGINE_NN_INTERNAL) && !defined(AUGENGINE_TRAIN_INTERNAL)` for a header
    its area shares with one above it); None for a public header."""
    path = os.path.join(engine, header)
    if not os.path.exists(path):
        return None
    guard = re.search(r'^#if(?:ndef| !defined)[^\n]*AUGENGINE_\w+_INTERNAL[^\n]*$', open(path).read(),
                      re.M)
    if not guard:
        return None
    return {a.lower() for a in re.findall(r'AUGENGINE_(\w+)_INTERNAL', guard.group(0))}


include = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
for top in ('engine', 'server', 'handlers', 'tests'):
    for folder, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if not f.endswith(('.c', '.h')):
                continue
            path = os.path.join(folder, f)
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            own = parts[1] if top == 'engine' and len(parts) > 2 else None
            for header in include.findall(open(path, encoding='utf-8').read()):
                target = header.split('/')[0] if '/' in header else None
                if target in areas:
                    if own and target not in reach(own):
                        problems.append('%s: %s is above area %s (it links %s)' %
                                        (rel, header, own, ', '.join(sorted(links.get(own, ()))) or
                                         'nothing'))
                    elif target != own and own not in (private(header) or {own}):
                        problems.append('%s: %s is private to engine/%s' %
                                        (rel, header, ', engine/'.join(sorted(private(header)))))
                elif own and not os.path.exists(os.path.join(folder, header)) and \
                        header != 'onnx.pb-c.h':
                    problems.append('%s: "%s" names no engine area (engine/ knows nothing of '
                                    'server/ or handlers/)' % (rel, header))

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
