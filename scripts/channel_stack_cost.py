"""What joining (T, Y, X) channel stacks costs: napari_vos.ChannelStack against dask.array.stack."""
import time

import dask.array as da
import numpy as np

from napari_vos import ChannelStack

for T in (100, 400):
    a = np.zeros((T, 1024, 1024), np.uint16)
    b = np.zeros((T, 1024, 1024), np.uint8)
    tic = time.perf_counter()
    d = da.stack([da.from_array(x, chunks=(1, 1024, 1024), name=False) for x in (a, b)], axis=-1)
    build_dask = time.perf_counter() - tic
    tic = time.perf_counter()
    c = ChannelStack([a, b])
    build_own = time.perf_counter() - tic
    reads = {}
    for name, stack in (("dask", d), ("ChannelStack", c)):
        times = []
        for _ in range(3):
            tic = time.perf_counter()
            for t in range(20):
                np.asarray(stack[t])
            times.append((time.perf_counter() - tic) / 20)
        reads[name] = min(times)
    print(f"T={T}: build dask {build_dask * 1e3:.0f} ms, ChannelStack {build_own * 1e3:.2f} ms; "
          f"read a frame: dask {reads['dask'] * 1e3:.2f} ms, ChannelStack {reads['ChannelStack'] * 1e3:.2f} ms")
