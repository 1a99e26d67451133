"""Item feature extraction: text encoders (transformers, the embedded MiniLM, CLIP's text tower), CLIP image
encoders, and CLIP image captioning with vocabulary words (MSM4SR's image-to-words step).

    items.py    what to encode: items / captions JSONL -> per-item sentences and image paths
    text.py     BERT-style encoders through transformers (default: the embedded Sentence-BERT MiniLM)
    hub.py      loading transformers models offline, one line when a model cannot be found
    clip.py     open_clip models: image tower, text tower, loading offline
    images.py   safe image paths (inside the image root) and guarded decoding
    plan.py     what each item needs encoded (deduplicated units), and units -> the artifact's tensors
    runner.py   batched, length-sorted, resumable encoding of many units with a progress callback
    partial.py  OUTPUT.partial/: the finished batches of an interrupted run
    extract.py  the `mmrec extract` pipeline: units -> tensors of the features artifact
    caption.py  the `mmrec caption` pipeline: vocabulary embeddings (cached) and top-N words per image
    download.py the `mmrec images` pipeline: item images by URL into a content-addressed folder (resumable)

Nothing here imports typer; torch, transformers and open_clip are imported inside functions.
"""
