"""The DAG: download -> preprocess train | preprocess validation -> fine-tune -> evaluate -> register.

                 download
                /        \\
   preprocess train    preprocess validation
               |            |
           fine-tune        |              (num_nodes > 1: launcher of a Kubeflow Trainer TrainJob)
                \\          /
                  evaluate
                     |
               register model   (never cached)
                     |
               deploy model     (never cached; only when compiled in: with_deploy=True)

`build_pipeline(settings)` turns the plain component functions in `components/`
into KFP components on the settings' images and returns the pipeline function,
ready for `kfp.compiler.Compiler().compile` or a `kfp.local` run. The deploy step is
compiled in only with `with_deploy=True` (`compile --deploy`, `run --local --set deploy=true`),
so the default DAG has six tasks; in it, the `deploy` parameter (default False) still decides
at run time whether the step deploys (docs/serving.md).
"""


import functools
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Markdown, Metrics, Model

from components.deploy import deploy_model
from components.download import download
from components.evaluate import evaluate
from components.launch.accelerator import ACCELERATOR_ENV
from components.fine_tune import fine_tune
from components.preprocess import preprocess_train, preprocess_validation
from components.register import register_model
from pipeline.parameters import DEFAULTS as D
from pipeline.serving import predictor_settings
from pipeline.settings import CompileSettings
from pipeline.steps import DEPLOY, DOWNLOAD, EVALUATE, FINE_TUNE, PREPROCESS, REGISTER, TRAINJOB_LAUNCHER, Step

PIPELINE_NAME = "qa-finetune"


def build_pipeline(settings: CompileSettings = CompileSettings(), with_deploy: bool = False):
    cpu = functools.partial(dsl.component, base_image=settings.cpu_image, install_kfp_package=False)
    gpu = functools.partial(dsl.component, base_image=settings.gpu_image, install_kfp_package=False)
    download_op, register_op = cpu(download), cpu(register_model)
    preprocess_train_op, preprocess_validation_op = cpu(preprocess_train), cpu(preprocess_validation)
    launcher = settings.num_nodes > 1  # fine-tune submits a TrainJob: the GPUs are on its nodes
    fine_tune_op = (cpu if launcher else gpu)(fine_tune)
    evaluate_op = (gpu if settings.eval_on_gpu else cpu)(evaluate)

    def sized(task, step: Step, accelerator: bool = False):
        res = settings.resources_for(step.key)
        task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
        task.set_memory_request(res.memory).set_memory_limit(res.memory)
        if accelerator and settings.accelerator_count:
            task.set_accelerator_type(settings.accelerator_type)
            task.set_accelerator_limit(settings.accelerator_count)
            for key, value in settings.node_selector:
                kubernetes.add_node_selector(task, label_key=key, label_value=value)
            for key, operator, effect in settings.tolerations:
                kubernetes.add_toleration(task, key=key, operator=operator, effect=effect)
            # the step fails fast if torch then sees no accelerator (components/launch/accelerator.py)
            task.set_env_variable(ACCELERATOR_ENV, settings.accelerator_type)
        if settings.pvc_name and step.pvc:
            kubernetes.mount_pvc(task, pvc_name=settings.pvc_name, mount_path=settings.pvc_mount_path)
            task.set_env_variable("HF_HOME", f"{settings.pvc_mount_path}/hf-cache")
        if settings.image_pull_secrets:
            kubernetes.set_image_pull_secrets(task, list(settings.image_pull_secrets))
        return task

    def registry_env(task):
        """The Model Registry token, and the S3 endpoint that components.registry.client.serving_uri
        writes into a minio:// model's s3:// URI (register records it; deploy converts a
        record made before that the same way)."""
        kubernetes.use_secret_as_env(task, secret_name=settings.registry_token_secret,
                                     secret_key_to_env={"token": "MODEL_REGISTRY_TOKEN"}, optional=True)
        kubernetes.use_secret_as_env(task, secret_name=settings.s3_secret, optional=True,
                                     secret_key_to_env={"AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"})

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Fine-tune and evaluate an extractive QA model on SQuAD-style data, "
                              "then register it.")
    def qa_finetune(
        dataset: str = D["dataset"], dataset_config: str = D["dataset_config"],
        dataset_revision: str = D["dataset_revision"], train_split: str = D["train_split"],
        validation_split: str = D["validation_split"], max_train_samples: int = D["max_train_samples"],
        max_eval_samples: int = D["max_eval_samples"], answer_policy: str = D["answer_policy"],
        max_context_chars: int = D["max_context_chars"],
        model: str = D["model"], model_revision: str = D["model_revision"],
        max_length: int = D["max_length"], doc_stride: int = D["doc_stride"],
        learning_rate: float = D["learning_rate"], num_train_epochs: float = D["num_train_epochs"],
        max_steps: int = D["max_steps"], batch_size: int = D["batch_size"],
        weight_decay: float = D["weight_decay"], warmup_fraction: float = D["warmup_fraction"],
        seed: int = D["seed"], precision: str = D["precision"], checkpoint_dir: str = D["checkpoint_dir"],
        save_steps: int = D["save_steps"], save_minutes: float = D["save_minutes"],
        num_nodes: int = settings.num_nodes,
        n_best: int = D["n_best"], max_answer_length: int = D["max_answer_length"],
        eval_batch_size: int = D["eval_batch_size"],
        null_score_diff_threshold: float = D["null_score_diff_threshold"],
        model_name: str = D["model_name"],
        model_version: str = D["model_version"], min_f1: float = D["min_f1"],
        registry_uri: str = D["registry_uri"], deploy: bool = D["deploy"],
    ) -> NamedTuple("Outputs", [("metrics", Metrics), ("model", Model), ("report", Markdown)]):
        fetched = sized(download_op(
            dataset=dataset, dataset_config=dataset_config, dataset_revision=dataset_revision,
            train_split=train_split, validation_split=validation_split,
            max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
            answer_policy=answer_policy, max_context_chars=max_context_chars, model=model,
            model_revision=model_revision), DOWNLOAD)
        # no retry: a wrong input fails the same way every time; network reads retry inside the step
        kubernetes.use_secret_as_env(fetched, secret_name=settings.hf_token_secret,
                                     secret_key_to_env={"HF_TOKEN": "HF_TOKEN"}, optional=True)
        kubernetes.use_secret_as_env(fetched, secret_name=settings.s3_secret, optional=True,
                                     secret_key_to_env={k: k for k in ("AWS_ACCESS_KEY_ID",
                                                                       "AWS_SECRET_ACCESS_KEY",
                                                                       "AWS_ENDPOINT_URL")})

        train_features = sized(preprocess_train_op(
            train_data=fetched.outputs["train_data"], base_model=fetched.outputs["base_model"],
            max_length=max_length, doc_stride=doc_stride), PREPROCESS)
        validation_features = sized(preprocess_validation_op(
            validation_data=fetched.outputs["validation_data"], base_model=fetched.outputs["base_model"],
            max_length=max_length, doc_stride=doc_stride), PREPROCESS)

        trained = sized(fine_tune_op(
            train_features=train_features.outputs["train_features"],
            base_model=fetched.outputs["base_model"], learning_rate=learning_rate,
            num_train_epochs=num_train_epochs, max_steps=max_steps, batch_size=batch_size,
            weight_decay=weight_decay, warmup_fraction=warmup_fraction, seed=seed,
            precision=precision, checkpoint_dir=checkpoint_dir, num_nodes=num_nodes,
            trainjob=settings.trainjob(), save_steps=save_steps, save_minutes=save_minutes,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER),
            TRAINJOB_LAUNCHER if launcher else FINE_TUNE, accelerator=not launcher)
        # preempted (SIGTERM) or lost node: the retry resumes from the checkpoint in checkpoint_dir
        trained.set_retry(num_retries=2, backoff_duration="60s")

        scored = sized(evaluate_op(
            model=trained.outputs["model"], validation_data=fetched.outputs["validation_data"],
            validation_features=validation_features.outputs["validation_features"],
            n_best=n_best, max_answer_length=max_answer_length, batch_size=eval_batch_size,
            null_score_diff_threshold=null_score_diff_threshold),
            EVALUATE, accelerator=settings.eval_on_gpu)

        registered = sized(register_op(
            model=trained.outputs["model"], metrics=scored.outputs["metrics"],
            train_data=fetched.outputs["train_data"], model_name=model_name,
            model_version=model_version, min_f1=min_f1, registry_uri=registry_uri,
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER), REGISTER)
        registered.set_caching_options(enable_caching=False)
        registry_env(registered)
        if with_deploy:
            deployed = sized(cpu(deploy_model)(
                model=trained.outputs["model"], metrics=scored.outputs["metrics"],
                registration=registered.outputs["registration"], deploy=deploy,
                model_name=model_name, model_version=model_version, min_f1=min_f1,
                registry_uri=registry_uri, pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                max_length=max_length,
                doc_stride=doc_stride, n_best=n_best, max_answer_length=max_answer_length,
                predictor=predictor_settings(settings)), DEPLOY)
            deployed.set_caching_options(enable_caching=False)
            registry_env(deployed)
        outputs = NamedTuple("Outputs", [("metrics", Metrics), ("model", Model), ("report", Markdown)])
        return outputs(metrics=scored.outputs["metrics"], model=trained.outputs["model"],
                       report=scored.outputs["report"])

    return qa_finetune
