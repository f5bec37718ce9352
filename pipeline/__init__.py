"""The QA fine-tuning pipeline: DAG, parameters and profiles, compile/run CLI (`python -m pipeline`)."""
