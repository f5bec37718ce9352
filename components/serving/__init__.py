"""Serving the fine-tuned model on KServe: the `kserve.Model` adapter, the model server
command, the InferenceService we render and the deploy step's logic (the Model Registry
serving records are in `components.registry.serving_records`).

The question answering itself is `components.qa.serving` (no KServe import there).
"""
