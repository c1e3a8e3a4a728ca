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
        var epochs = Cli.Int("--epochs", CoraDefaults.Epochs, "Passes over the training rows. Start with 1; raise while validation AUC improves.", 1);
        var batch = Cli.Int("--batch-size", CoraDefaults.BatchSize, "Rows per training step. Memory grows with batch x prompt length.", 1);
        var accum = Cli.Int("--grad-accum", CoraDefaults.GradientAccumulation, "Batches summed per optimiser step (effective batch = batch x this).", 1);
        var lr = Cli.Real("--lr", CoraDefaults.LearningRate, "Peak AdamW learning rate; lower it (3e-4) if the loss jumps.", 0, 10, minExclusive: true);
        var wd = Cli.Real("--weight-decay", CoraDefaults.WeightDecay, "AdamW weight decay (not on biases and 1-D parameters).", 0, 10);
        var warmup = Cli.Real("--warmup", CoraDefaults.Warmup, "Warm-up: a fraction of all steps when below 1, else a step count.", 0, 1e9);
        var maxRows = Cli.Int("--max-rows", 0, "Use at most N training rows (0 = all; a seeded random sample).");
        var maxSteps = Cli.Int("--max-steps", 0, "Stop after N optimiser steps (0 = no limit).");
        var validateEvery = Cli.Int("--validate-every", CoraDefaults.ValidateEvery, "Validate every N optimiser steps (and at each epoch's end).", 1);
        var maxValid = Cli.Int("--max-valid-rows", 0, "Cap on validation rows used at each validation (0 = half of valid).");
        var patience = Cli.Int("--patience", CoraDefaults.Patience, "Stop after this many validations without a better AUC (0 = never).");
        var scoringBatch = Cli.Int("--scoring-batch-size", CoraDefaults.ScoringBatchSize, "Rows per LLM forward when scoring.", 1);
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => CoraDefaults.Seed, Description = "One seed for initialisation, sampling, shuffling and dropout." };
        var rank = Cli.Int("--rank", CoraDefaults.Rank, "Rank r of the collaborative weights (keep alpha / r near 2).", 1);
        var alpha = Cli.Real("--alpha", CoraDefaults.Alpha, "alpha of the collaborative weights; the update is scaled by alpha / r.", 0, 1e6, minExclusive: true);
        var generator = new Option<string>("--generator") { Description = "Query generator preset: paper (CoRA's 8 x 512) or compact (2 x 256); --generator-* override single values.", DefaultValueFactory = _ => "paper" };
        generator.AcceptOnlyFromAmong("paper", "compact");
        var genLayers = new Option<int?>("--generator-layers") { Description = $"Q-Former layers (paper: {CoraDefaults.GeneratorLayers})." };
        var genHidden = new Option<int?>("--generator-hidden") { Description = $"Q-Former width (paper: {CoraDefaults.GeneratorHidden}); must be divisible by the heads." };
        var genHeads = new Option<int?>("--generator-heads") { Description = $"Q-Former attention heads (paper: {CoraDefaults.GeneratorHeads})." };
        var genFfn = new Option<int?>("--generator-ffn") { Description = $"Q-Former feed-forward width (paper: {CoraDefaults.GeneratorFeedForward})." };
        var tokenRms = new Option<double?>("--cf-token-rms") { Description = $"RMS at which the generator reads each half (user, item) of the CF token, scaled once from the training rows (default {CoraDefaults.CfTokenRms}; 0 = the raw token, as CoRA's code)." };
        var cfKind = new Option<string>("--cf") { Description = $"The CF stage: {string.Join(", ", CollaborativeModels.Kinds)} (default mf; the paper's CoRA-MF, CoRA-LGCN, CoRA-SAS); --mf-* options apply to each.", DefaultValueFactory = _ => "mf" };
        cfKind.Validators.Add(r => { var v = r.GetValueOrDefault<string>() ?? ""; if (!CollaborativeModels.Kinds.Contains(v)) r.AddError($"--cf: unknown CF model '{Microsoft.ML.Cora.IO.ErrorText.Elide(v, 40)}'; use {string.Join(", ", CollaborativeModels.Kinds)}."); });
        var cfFrom = new Option<string?>("--cf-from") { Description = "Reuse the CF stage of a saved model (.zip from cora train) instead of training one: train it once, compare methods on it." };
        var mfDim = new Option<int?>("--mf-dim") { Description = $"CF embedding size (default: mf and lightgcn {CoraDefaults.MfEmbeddingDim}, sasrec {CoraDefaults.SasRecEmbeddingDim})." };
        var mfLr = new Option<double?>("--mf-lr") { Description = $"CF stage's Adam learning rate (default: mf and lightgcn {CoraDefaults.MfLearningRate:G3}, sasrec {CoraDefaults.SasRecLearningRate:G3})." };
        var mfWd = new Option<double?>("--mf-wd") { Description = $"CF stage's weight decay, L2 (default: mf and lightgcn {CoraDefaults.MfWeightDecay:G3}, sasrec {CoraDefaults.SasRecWeightDecay:G3}); raise it when validation AUC stalls while the loss falls." };
        var mfEpochs = Cli.Int("--mf-epochs", CoraDefaults.MfMaxEpochs, "Maximum MF epochs (early stopping on validation AUC).", 1);
        var mfPatience = Cli.Int("--mf-patience", CoraDefaults.MfPatience, "MF epochs without a better validation AUC before stopping.", 1);
        var ckpt = new Option<string?>("--checkpoint-dir") { Description = "Resumable checkpoints; a rerun with the same folder and the same data and options resumes." };
        var restart = new Option<bool>("--restart") { Description = "Discard the checkpoints in --checkpoint-dir and start afresh." };
        var json = new Option<string?>("--json") { Description = "Also write validation metrics, wall time and peak memory as JSON." };
        var plot = new Option<string?>("--plot") { Description = "Write training curves (loss and validation AUC, own axes) to this PNG." };
        var warmFromData = new Option<bool>("--warm-from-data") { Description = "Split warm/cold by the data's not_cold column instead of the model's CF stage." };
        var cmd = new Command("train", "Train the CF stage and a method, save the model, report validation metrics.")
        {
            train, valid, items, llm, method, output, epochs, batch, accum, lr, wd, warmup, maxRows, maxSteps, validateEvery, maxValid, patience,
            scoringBatch, seed, rank, alpha, generator, genLayers, genHidden, genHeads, genFfn, tokenRms, cfKind, cfFrom, mfDim, mfLr, mfWd, mfEpochs, mfPatience, ckpt, restart, json, plot, warmFromData,
        };
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
            var gen = preset with
            {
                NumLayers = p.GetValue(genLayers) ?? preset.NumLayers, Hidden = p.GetValue(genHidden) ?? preset.Hidden,
                Heads = p.GetValue(genHeads) ?? (p.GetValue(genHidden) is { } h ? Math.Clamp(h / 64, 1, preset.Heads) : preset.Heads),
                FeedForward = p.GetValue(genFfn) ?? preset.FeedForward, CfTokenRms = p.GetValue(tokenRms) ?? preset.CfTokenRms,
            };
            long s = p.GetValue(seed);
            var options = new CoraTrainer.Options
            {
                LlmPath = llmPath, Device = device, LlmDtype = dtype, GeneratorDtype = on.GeneratorDtype, CancellationToken = c.Ct,
                Model = new CoraModelOptions { Method = m, Rank = p.GetValue(rank), Alpha = p.GetValue(alpha), QueryGenerator = gen, Seed = s },
                Training = new TrainingOptions
                {
                    Epochs = p.GetValue(epochs), BatchSize = p.GetValue(batch), GradientAccumulation = p.GetValue(accum), LearningRate = p.GetValue(lr),
                    WeightDecay = p.GetValue(wd), Warmup = p.GetValue(warmup), MaxTrainRows = p.GetValue(maxRows), MaxSteps = p.GetValue(maxSteps),
                    ValidateEvery = p.GetValue(validateEvery), MaxValidationRows = p.GetValue(maxValid), Patience = p.GetValue(patience),
                    ScoringBatchSize = p.GetValue(scoringBatch), CheckpointDirectory = p.GetValue(ckpt), Seed = s,
                },
                MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = p.GetValue(mfDim), LearningRate = p.GetValue(mfLr), WeightDecay = p.GetValue(mfWd), MaxEpochs = p.GetValue(mfEpochs), Patience = p.GetValue(mfPatience), Seed = s },
                CollaborativeFilter = CollaborativeModels.Parse(p.GetValue(cfKind)!),
            };
            // Everything is checked before any data is read or any model is built: option values, device, output paths.
            var problems = options.Validate().Where(e => e.Option is not ("ItemTitles" or "LlmPath")).Select(e => Flag(e.Option) + ": " + e.Problem)
                .Concat(FileChecks.CheckOutputs(new[] { ("--out", p.GetValue(output)), ("--json", p.GetValue(json)), ("--plot", p.GetValue(plot)) },
                    new[] { p.GetValue(train), p.GetValue(valid), p.GetValue(items), llmPath, p.GetValue(cfFrom) }).Select(x => $"{x.name}: {x.problem}")).ToList();
            // --cf-from brings a trained CF stage of its own kind: options that describe training one would be ignored.
            if (p.GetValue(cfFrom) is not null)
            {
                var ignored = new Option[] { cfKind, mfDim, mfLr, mfWd, mfEpochs, mfPatience }.Where(o => p.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
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
            if (llmPath is not null && FileChecks.KindOf(llmPath) is not (FileChecks.Kind.Regular or FileChecks.Kind.Directory))
                problems.Add($"--llm: '{ErrorText.Elide(llmPath)}' is neither a llama2.c .bin file nor a Hugging Face folder.");
            if (p.GetValue(ckpt) is { } ckDir && FileChecks.FolderProblem(ckDir) is { } ckProblem) problems.Add($"--checkpoint-dir: {ckProblem}");
            if (problems.Count > 0) throw new UsageException(string.Join(" ", problems));
            if (p.GetValue(restart) && p.GetValue(ckpt) is { } ck) CoraModelTrainer.ClearCheckpoints(ck);

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
            if (p.GetValue(json) is { } j) Cli.WriteJson(j, metrics, new JsonObject { ["method"] = p.GetValue(method), ["cf"] = options.CollaborativeModel?.Kind ?? p.GetValue(cfKind), ["wall_seconds"] = sw.Elapsed.TotalSeconds, ["peak_mib"] = peak });
            if (p.GetValue(plot) is { } png)
            {
                TrainingPlot.Save(model.TrainingResult ?? new TrainingResult(0, double.NaN, 0, new(), new(), false, false), png, $"cora train --method {p.GetValue(method)}");
                c.Out.WriteLine($"plot: {png}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The CLI flag of a library option name (for one-line usage errors).</summary>
    internal static string Flag(string option) => option switch
    {
        "Training.Epochs" => "--epochs", "Training.BatchSize" => "--batch-size", "Training.GradientAccumulation" => "--grad-accum",
        "Training.LearningRate" => "--lr", "Training.WeightDecay" => "--weight-decay", "Training.Warmup" => "--warmup",
        "Training.ValidateEvery" => "--validate-every", "Training.MaxValidationRows" => "--max-valid-rows", "Training.Patience" => "--patience",
        "Training.MaxTrainRows" => "--max-rows", "Training.MaxSteps" => "--max-steps", "Training.ScoringBatchSize" => "--scoring-batch-size",
        "Model.Rank" => "--rank", "Model.Alpha" => "--alpha", "Model.QueryGenerator.NumLayers" => "--generator-layers",
        "Model.QueryGenerator.Hidden" => "--generator-hidden", "Model.QueryGenerator.Heads" => "--generator-heads",
        "Model.QueryGenerator.FeedForward" => "--generator-ffn", "Model.QueryGenerator.CfTokenRms" => "--cf-token-rms", "MatrixFactorization.EmbeddingDim" => "--mf-dim", "MatrixFactorization.LearningRate" => "--mf-lr", "MatrixFactorization.WeightDecay" => "--mf-wd",
        "MatrixFactorization.MaxEpochs" => "--mf-epochs", "Training.CheckpointDirectory" => "--checkpoint-dir", "MatrixFactorization.Patience" => "--mf-patience", "Device" => "--device", "LlmDtype" => "--llm-dtype", "GeneratorDtype" => "--generator-dtype",
        _ => option,
    };
}
