"""``softpool gallery``'s work: the per-file jobs, the record of earlier runs, the worker
processes, the README page and its PSNR/SSIM metrics."""
