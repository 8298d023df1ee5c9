"""Users' own datasets: uploads checked and converted in the API process, with the standard library and Pillow.

- `limits.py`   what an upload may be (from service/config.py), and the error naming what broke a limit
- `archive.py`  a zip checked from its central directory before any member is decompressed
- `npy.py`      the `.npy` header reader (uint8 images, integer labels; never pickle)
- `idx.py`      IDX headers, read and written (MNIST's format, and the canonical stored form)
- `images.py`   PNG and JPEG images, their size checked from the header before decoding
- `convert.py`  an upload (class folders, .npz, IDX) to the canonical form
- `stored.py`   the canonical form in the artifact store, under its content hash
"""
