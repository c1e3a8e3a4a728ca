using Microsoft.ML.Cora.IO;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Plots;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.Training;

namespace Cora.Cli;

/// <summary><c>cora train</c>: the CF stage and a method, saved as an ML.NET model; every option bound from the library's defaults.</summary>
internal static class TrainCommand
{
    public static Command Create(CliContext c)
    {
        var train = Cli.Req("--train", "Training interactions (TSV: uid iid label timestamp not_cold his).");
        var valid = Cli.Req("--valid", "Validation interactions (same layout); model selection uses a fixed random half.");
        var items = Cli.Req("--items", "Item titles (TSV: iid title).");
        var llm = new Option<string?>("--llm") { Description = "Hugging Face model folder or llama2.c .bin (tokenizer beside it). Not needed for --method mf." };
        var method = new Option<string>("--method") { Description = "cora | mf | llm-lora | collm", DefaultValueFactory = _ => "cora" };
        var output = Cli.Req("--out", "Where to write the model zip (an ML.NET model).");
        // Options declared in the library (flag, help, default, range): TrainingOptions, CoraModelOptions, the generator (overrides
        // of the preset), the CF stage.
        var training = new DeclaredOptions(typeof(TrainingOptions));
        var modelOptions = new DeclaredOptions(typeof(CoraModelOptions));
        var generatorOptions = new DeclaredOptions(typeof(QueryGeneratorOptions), overridesOnly: true);
        var cfOptions = new DeclaredOptions(typeof(MatrixFactorizationOptions), skip: nameof(MatrixFactorizationOptions.Seed));
        var generator = new Option<string>("--generator") { Description = "Query generator preset: paper (CoRA's 8 x 512) or compact (2 x 256); --generator-* override single values.", DefaultValueFactory = _ => "paper" };
        generator.AcceptOnlyFromAmong("paper", "compact");
        var cfKind = new Option<string>("--cf") { Description = $"The CF stage: {string.Join(", ", CollaborativeModels.Kinds)} (default mf; the paper's CoRA-MF, CoRA-LGCN, CoRA-SAS); --mf-* options apply to each.", DefaultValueFactory = _ => "mf" };
        cfKind.Validators.Add(r => { var v = r.GetValueOrDefault<string>() ?? ""; if (!CollaborativeModels.Kinds.Contains(v)) r.AddError($"--cf: unknown CF model '{Microsoft.ML.Cora.IO.ErrorText.Elide(v, 40)}'; use {string.Join(", ", CollaborativeModels.Kinds)}."); });
        var cfFrom = new Option<string?>("--cf-from") { Description = "Reuse the CF stage of a saved model (.zip from cora train or CoraModel.Save) instead of training one: train it once, compare methods on it." };
        var restart = new Option<bool>("--restart") { Description = "Discard the checkpoints in --checkpoint-dir and start afresh." };
        var json = new Option<string?>("--json") { Description = "Also write validation metrics, wall time and peak memory as JSON." };
        var plot = new Option<string?>("--plot") { Description = "Write training curves (loss and validation AUC, own axes) to this PNG." };
        var recipe = new Option<string?>("--preset")
        {
            Description = "A named training recipe; flags given beside it change single values. cpu-2h: CoRA's schedule over 3 passes of the full split, " +
                "batch 16, validation every 250 steps on 1,000 rows, patience 8, stopped at 105 minutes (the whole run fits in 2 hours on 2 cores); gpu-2h: the same over up to 10 passes.",
        };
        recipe.AcceptOnlyFromAmong(TrainingOptions.Presets.Keys.ToArray());
        var warmFromData = new Option<bool>("--warm-from-data") { Description = "Split warm/cold by the data's not_cold column instead of the model's CF stage." };
        var cmd = new Command("train", "Train the CF stage and a method, save the model, report validation metrics.")
        {
            train, valid, items, llm, method, output, generator, recipe, cfKind, cfFrom, restart, json, plot, warmFromData,
        };
        foreach (var declared in new[] { training, modelOptions, generatorOptions, cfOptions }) declared.AddTo(cmd);
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var sw = Stopwatch.StartNew();
            var on = dev.Get(p);
            var (device, dtype) = on;
            var m = Cli.ParseMethod(p.GetValue(method)!);
            string? llmPath = p.GetValue(llm);
            if (m != CoraMethod.Mf && llmPath is null) throw new UsageException($"--llm is required for --method {p.GetValue(method)}.");
            var preset = p.GetValue(generator) == "compact" ? QueryGeneratorOptions.Compact : QueryGeneratorOptions.Paper;
            var gen = generatorOptions.Apply(preset, p);
            // A width given without heads keeps heads of about 64 dimensions (at most the preset's).
            if (generatorOptions.Given(p, nameof(QueryGeneratorOptions.Hidden)) && !generatorOptions.Given(p, nameof(QueryGeneratorOptions.Heads)))
                gen = gen with { Heads = Math.Clamp(gen.Hidden / 64, 1, preset.Heads) };
            var trainingValues = p.GetValue(recipe) is { } named ? training.ApplyGiven(TrainingOptions.Presets[named], p) : training.Apply(new TrainingOptions(), p);
            long s = trainingValues.Seed;
            var options = new CoraTrainer.Options
            {
                LlmPath = llmPath, Device = device, LlmDtype = dtype, GeneratorDtype = on.GeneratorDtype, CancellationToken = c.Ct,
                Model = modelOptions.Apply(new CoraModelOptions { Method = m, QueryGenerator = gen, Seed = s }, p),
                Training = trainingValues,
                MatrixFactorization = cfOptions.Apply(new MatrixFactorizationOptions { Seed = s }, p),
                CollaborativeFilter = CollaborativeModels.Parse(p.GetValue(cfKind)!),
            };
            // Everything is checked before any data is read or any model is built: option values, device, output paths.
            var problems = options.Validate().Where(e => e.Option is not ("ItemTitles" or "LlmPath")).Select(e => DeclaredOptions.FlagOf(typeof(CoraTrainer.Options), e.Option) + ": " + e.Problem)
                .Concat(FileChecks.CheckOutputs(new[] { ("--out", p.GetValue(output)), ("--json", p.GetValue(json)), ("--plot", p.GetValue(plot)) },
                    new[] { p.GetValue(train), p.GetValue(valid), p.GetValue(items), llmPath, p.GetValue(cfFrom) }).Select(x => $"{x.name}: {x.problem}")).ToList();
            // --cf-from brings a trained CF stage of its own kind: options that describe training one would be ignored.
            if (p.GetValue(cfFrom) is not null)
            {
                var ignored = cfOptions.Options.Prepend(cfKind).Where(o => p.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (ignored.Count > 0)
                    problems.Add($"{string.Join(", ", ignored)}: --cf-from uses the CF stage saved in that model (its kind and weights), so {(ignored.Count == 1 ? "this option would be" : "these options would be")} ignored; drop {(ignored.Count == 1 ? "it" : "them")} or drop --cf-from.");
            }
            if (problems.Count > 0) throw new UsageException(string.Join(" ", problems));
            CoraDevice.Resolve(device);
            // Inputs exist as regular files (a FIFO or a device would block or never end), the LLM as a file or a folder, and a
            // checkpoint folder is writable: all before --restart deletes anything and before any data is read.
            foreach (var (flag, path) in new[] { ("--train", p.GetValue(train)), ("--valid", p.GetValue(valid)), ("--items", p.GetValue(items)), ("--cf-from", p.GetValue(cfFrom)) })
                if (path is not null && FileChecks.KindOf(path) is var kind && kind != FileChecks.Kind.Regular)
                    problems.Add($"{flag}: '{ErrorText.Elide(path)}' {(kind == FileChecks.Kind.Missing ? "does not exist" : $"is a {kind.ToString().ToLowerInvariant()}, not a regular file")}.");
            if (llmPath is not null && ModelOptions.LlmPathProblem(llmPath) is { } llmProblem) problems.Add($"--llm: {llmProblem}.");
            if (trainingValues.CheckpointDirectory is { } ckDir && FileChecks.FolderProblem(ckDir) is { } ckProblem) problems.Add($"--checkpoint-dir: {ckProblem}");
            if (problems.Count > 0) throw new UsageException(string.Join(" ", problems));
            if (p.GetValue(restart) && trainingValues.CheckpointDirectory is { } ck) TrainingLoop.ClearCheckpoints(ck);

            CoraTransformer? cfSource = null;
            if (p.GetValue(cfFrom) is { } from)
            {
                if (!File.Exists(from)) throw new UsageException($"--cf-from: '{ErrorText.Elide(from)}' not found.");
                cfSource = Cli.Load(from, on).model;
                options.CollaborativeModel = cfSource.Model.Cf;
                c.Out.WriteLine($"CF stage: {cfSource.Model.Cf.Kind} from {from} (not retrained)");
            }
            using var cfOwner = cfSource;
            var trainRows = InteractionTsv.Read(p.GetValue(train)!, notice: c.Out.WriteLine);
            var validRows = InteractionTsv.Read(p.GetValue(valid)!, notice: c.Out.WriteLine);
            InteractionChecks.RequireBothLabels(validRows, $"--valid {p.GetValue(valid)}");
            var catalog = ItemCatalog.Read(p.GetValue(items)!);
            if (m != CoraMethod.Mf) Cli.CheckTitles(trainRows.Concat(validRows), catalog, p.GetValue(items)!);
            c.Out.WriteLine($"data: {trainRows.Count} train rows, {validRows.Count} valid rows, {catalog.Count} items");
            var ml = Cli.NewContext((int)s);
            using var progress = new ProgressPrinter(c.Out);
            progress.Attach(ml, options);
            options.ItemTitles = catalog.Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
            options.ValidationData = ml.Data.LoadFromEnumerable(CoraInput.From(validRows));
            var trainView = ml.Data.LoadFromEnumerable(CoraInput.From(trainRows));
            var model = ml.Recommendation().Trainers.Cora(options).Fit(trainView);
            // Atomic: a failure mid-save leaves an existing model file intact.
            Microsoft.ML.Cora.IO.AtomicFile.Write(p.GetValue(output)!, st => ml.Model.Save(model, trainView.Schema, st));
            var metrics = Cli.EvaluateRows(ml, model, validRows, p.GetValue(warmFromData));
            progress.Done();
            Cli.Print(c.Out, metrics);
            long peak = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);
            c.Out.WriteLine($"wall time {sw.Elapsed:hh\\:mm\\:ss}, peak working set {peak} MiB, model {p.GetValue(output)}");
            if (p.GetValue(json) is { } j)
            {
                var extra = new JsonObject { ["method"] = p.GetValue(method), ["cf"] = options.CollaborativeModel?.Kind ?? p.GetValue(cfKind), ["wall_seconds"] = sw.Elapsed.TotalSeconds, ["peak_mib"] = peak };
                if (model.TrainingResult is { } tr)
                {
                    // The run's shape: optimiser steps taken, the step whose weights were kept and its AUC on the selection sample.
                    extra["steps"] = tr.Steps; extra["best_step"] = tr.BestStep; extra["stopped_early"] = tr.StoppedEarly;
                    if (double.IsFinite(tr.BestValidationAuc)) extra["best_selection_auc"] = tr.BestValidationAuc;
                }
                Cli.WriteJson(j, metrics, extra);
            }
            if (p.GetValue(plot) is { } png)
            {
                TrainingPlot.Save(model.TrainingResult ?? new TrainingResult(0, double.NaN, 0, new(), new(), false, false), png, $"cora train --method {p.GetValue(method)}");
                c.Out.WriteLine($"plot: {png}");
            }
            return 0;
        });
        return cmd;
    }
}
