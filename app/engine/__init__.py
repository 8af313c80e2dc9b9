"""The inference engine, the only package that imports llama_cpp.

- prompts live in app.prompts (chat formats and the families' renderers, no llama_cpp);
- llama.py: LlamaCppEngine (load, render and split the prompt, prefill with images, stream);
- mtmd.py: the prompt as libmtmd splits it (text ids and ImageUnit chunks), freed on exit;
- sampling.py: the token loop after prefill;
- caches.py: what is kept between turns (KVCache: the KV cache's units, prefix reuse, snapshots; image embeddings);
- logsink.py: llama.cpp's and libmtmd's log lines into Python logging;
- baseline.py: llama-cpp-python's stock chat handler, the benchmark's baseline.
"""

from app.engine.llama import LlamaCppEngine, LoadedModel, extra_buffers, select_chat_format
from app.engine.sampling import _held_back
from app.machine import auto_gpu_layers, free_gpu_memory, physical_cores
from app.prompts import CHAT_HANDLERS, MAX_IMAGES

__all__ = ["LlamaCppEngine", "LoadedModel", "select_chat_format", "extra_buffers", "CHAT_HANDLERS", "MAX_IMAGES",
           "physical_cores", "auto_gpu_layers", "free_gpu_memory", "_held_back"]
