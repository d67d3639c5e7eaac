"""Video folder -> prepared cache: decode, resize, optical flow (CPU pool, GPU batcher, Ray), packing,
imported rawframes and the synthetic set."""
