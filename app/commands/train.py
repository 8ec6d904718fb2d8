"""`tinystudio train`: train a model on a data set (app.workflows.train, as the Train page does)."""
from __future__ import annotations

from app.commands.common import check_out, model_for_data, print_json, progress_log
from app.workflows.files import write_model


def cmd_train(args) -> int:
    from app.workflows.train import TrainSettings, train_version
    from engine.data import load_dataset

    out = args.out
    check_out(out)
    data = load_dataset(args.dataset, seed=args.seed)
    graph = model_for_data(args, data)
    settings = TrainSettings(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                             patience=args.patience)
    result = train_version(graph, data, settings, progress=progress_log(args.quiet))
    trained, rep = result.graph, result.report
    write_model(trained, out)
    # "provenance" holds the same fields as the params of a version the studio's Train page saves.
    res = {"model": graph.name, "dataset": data.name, "out": out, **rep.to_json(),
           "data": data.to_json(), "provenance": result.provenance}
    if args.json:
        return print_json(res)
    stop = f", stopped early (best epoch {rep.best_epoch})" if rep.early_stopped else ""
    metric = "accuracy" if data.task == "classification" else "R^2"
    print(f"model    {graph.name}")
    print(f"data     {data.name}: {len(data.x_train)} train / {len(data.x_val)} validation samples, "
          f"{list(data.input_shape)} per sample, {data.classes} classes")
    print(f"trained  {rep.epochs_run} epochs in {rep.seconds:.1f} s{stop}")
    print(f"{metric:<8} {rep.accuracy:.2%} on the validation split (loss {rep.loss:.4f})")
    print(f"wrote    {out}")
    return 0
