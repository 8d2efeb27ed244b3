#!/usr/bin/env python3
"""Issue-bound estimate of the assignment kernel from its SASS.

    cuobjdump -sass libpgkm_kernels.a | python3 bench/gpu/sass_loop.py

For every assign_kernel<B> it finds the innermost loop holding the most FFMAs (the
group loop: one group of centroids scored against the thread's points) and prints its
instruction mix. FFMA / instructions is the fraction of the FP32 peak the loop can
reach when it issues one instruction per cycle per SM sub-partition and nothing else
stalls it: an upper bound, read off the code, not measured.
"""
import collections
import re
import sys

INSTRUCTION = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);')


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    rows = []
    for function in re.split(r'\n\s*Function : ', text)[1:]:
        name = function.split('\n', 1)[0]
        match = re.search(r'assign_kernelILi(\d+)E', name)
        if not match:
            continue
        code = [(int(a, 16), op) for a, _, op, _ in INSTRUCTION.findall(function)]
        targets = [(int(a, 16), op, rest) for a, _, op, rest in INSTRUCTION.findall(function)]
        best = None
        for address, op, rest in targets:
            jump = re.search(r'0x([0-9a-f]+)', rest)
            if not op.startswith('BRA') or not jump or int(jump.group(1), 16) >= address:
                continue
            body = [o.split('.')[0] for a, o in code if int(jump.group(1), 16) <= a <= address]
            mix = collections.Counter(body)
            key = (mix['FFMA'], -len(body))
            if best is None or key > best[0]:
                best = (key, mix, len(body))
        if best:
            _, mix, size = best
            rows.append((int(match.group(1)), size, mix))
    for b, size, mix in sorted(rows):
        others = ', '.join(f'{op} {n}' for op, n in mix.most_common() if op != 'FFMA')
        print(f'b={b:2d}  loop {size:4d} instructions, FFMA {mix["FFMA"]:4d}, '
              f'issue bound {mix["FFMA"] / size:.3f} of peak  ({others})')


if __name__ == '__main__':
    main()
