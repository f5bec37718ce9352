"""preprocess train / preprocess validation: examples -> unpadded model features (Arrow)."""

from kfp.dsl import Dataset, Input, Model, Output


def preprocess_train(
    train_data: Input[Dataset],
    base_model: Input[Model],
    max_length: int,
    doc_stride: int,
    train_features: Output[Dataset],
):
    from components.io.featurize import featurize

    train_features.metadata.update(featurize(train_data.path, base_model.path, train_features.path,
                                             "train", max_length, doc_stride,
                                             source=train_data.metadata.get("file")))
    print(f"train features: {train_features.metadata}", flush=True)


def preprocess_validation(
    validation_data: Input[Dataset],
    base_model: Input[Model],
    max_length: int,
    doc_stride: int,
    validation_features: Output[Dataset],
):
    from components.io.featurize import featurize

    validation_features.metadata.update(featurize(validation_data.path, base_model.path,
                                                  validation_features.path, "validation",
                                                  max_length, doc_stride,
                                                  source=validation_data.metadata.get("file")))
    print(f"validation features: {validation_features.metadata}", flush=True)
