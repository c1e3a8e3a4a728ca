using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>The <c>cora</c> command-line tool, built on the ML.NET surface (Cora.Estimators).</summary>
public static class CoraCli
{
    /// <summary>Runs the tool; returns the exit code (0 ok, 1 error, 2 usage).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
    {
        var verbose = new Option<bool>("--verbose") { Description = "Show stack traces on errors.", Recursive = true };
        var root = new RootCommand("cora: CoRA (Collaborative LoRA) recommenders on a frozen LLaMA-family LLM.") { verbose };
        var ctx = new Context(stdout, stderr, ct);
        root.Subcommands.Add(Train(ctx));
        root.Subcommands.Add(Evaluate(ctx));
        root.Subcommands.Add(Predict(ctx));
        root.Subcommands.Add(Recommend(ctx));
        root.Subcommands.Add(Quickstart(ctx));
        root.Subcommands.Add(DataCommand(ctx));
        root.Subcommands.Add(DoctorCommand.Create(ctx));
        root.Subcommands.Add(BenchCommand.Create(ctx));
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) stderr.WriteLine($"error: {e.Message}");
            return 2;
        }
        try
        {
            // CORA_LIBTORCH, before TorchSharp starts (doctor reports a failure itself, after the versions).
            if (parse.CommandResult.Command.Name != "doctor") LibTorchRuntime.EnsureLoaded();
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            var inner = e;
            while (inner is System.Reflection.TargetInvocationException or AggregateException && inner.InnerException is not null) inner = inner.InnerException;
            stderr.WriteLine(parse.GetValue(verbose) ? $"error: {e}" : $"error: {inner.Message}");
            return inner is OperationCanceledException ? 130 : 1;
        }
    }

    internal sealed record Context(TextWriter Out, TextWriter Err, CancellationToken Ct);

    private static Option<string> Req(string name, string desc) => new(name) { Description = desc, Required = true };

    /// <summary>--device and --llm-dtype, the same on every command that computes; checked before any work starts.</summary>
    internal sealed record DeviceOptions(Option<string> Device, Option<string> Dtype)
    {
        public static DeviceOptions Create()
        {
            var device = new Option<string>("--device") { Description = $"Where to compute: {CoraDevice.DeviceChoices} (auto = CUDA when available).", DefaultValueFactory = _ => "cpu" };
            device.Validators.Add(r => { if (CoraDevice.DeviceError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--device: " + e + "."); });
            var dtype = new Option<string>("--llm-dtype") { Description = $"dtype of the frozen LLM: {CoraDevice.DtypeChoices} (auto = bf16 on CUDA, fp32 on the CPU). The generator and loss stay fp32.", DefaultValueFactory = _ => "auto" };
            dtype.Validators.Add(r => { if (CoraDevice.DtypeError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--llm-dtype: " + e + "."); });
            return new(device, dtype);
        }
        public void AddTo(Command c) { c.Options.Add(Device); c.Options.Add(Dtype); }
        public (string device, string dtype) Get(ParseResult p) => (p.GetValue(Device)!, p.GetValue(Dtype)!);
    }

    private static Command Train(Context c)
    {
        var train = Req("--train", "Training interactions (TSV: uid iid label timestamp not_cold his).");
        var valid = Req("--valid", "Validation interactions (same layout); model selection uses a fixed random half.");
        var items = Req("--items", "Item titles (TSV: iid title).");
        var llm = new Option<string?>("--llm") { Description = "Hugging Face model folder or llama2.c .bin (tokenizer beside it). Not needed for --method mf." };
        var method = new Option<string>("--method") { Description = "cora | mf | llm-lora | collm", DefaultValueFactory = _ => "cora" };
        var output = Req("--out", "Where to write the model zip (an ML.NET model).");
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 1, Description = "Training epochs of the LLM-based methods." };
        var maxRows = new Option<int>("--max-rows") { DefaultValueFactory = _ => 0, Description = "Use at most N training rows (0 = all; a seeded random sample)." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 2023 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 8 };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 1e-3, Description = "Peak learning rate." };
        var maxSteps = new Option<int>("--max-steps") { DefaultValueFactory = _ => 0, Description = "Stop after N optimiser steps (0 = no limit)." };
        var validateEvery = new Option<int>("--validate-every") { DefaultValueFactory = _ => 250 };
        var maxValid = new Option<int>("--max-valid-rows") { DefaultValueFactory = _ => 0, Description = "Cap on validation rows used at each validation (0 = half of valid)." };
        var mfDim = new Option<int>("--mf-dim") { DefaultValueFactory = _ => 256, Description = "CF embedding size." };
        var mfEpochs = new Option<int>("--mf-epochs") { DefaultValueFactory = _ => 200, Description = "Maximum MF epochs (early stopping on validation AUC)." };
        var ckpt = new Option<string?>("--checkpoint-dir") { Description = "Resumable checkpoints; a rerun with the same folder resumes." };
        var genLayers = new Option<int>("--generator-layers") { DefaultValueFactory = _ => 8, Description = "Q-Former layers of the query generator (CoRA: 8)." };
        var genHidden = new Option<int>("--generator-hidden") { DefaultValueFactory = _ => 512, Description = "Q-Former width (CoRA: 512)." };
        var genFfn = new Option<int>("--generator-ffn") { DefaultValueFactory = _ => 3072, Description = "Q-Former feed-forward width (CoRA: 3072)." };
        var json = new Option<string?>("--json") { Description = "Also write validation metrics, wall time and peak memory as JSON." };
        var plot = new Option<string?>("--plot") { Description = "Write training curves (loss, validation AUC) to this PNG." };
        var cmd = new Command("train", "Train the CF stage and a method, save the model, report validation metrics.")
        { train, valid, items, llm, method, output, epochs, maxRows, seed, batch, lr, maxSteps, validateEvery, maxValid, mfDim, mfEpochs, ckpt, genLayers, genHidden, genFfn, json, plot };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var sw = Stopwatch.StartNew();
            var (device, dtype) = dev.Get(p);
            CoraDevice.Resolve(device);   // a missing GPU is reported before any data is read
            var m = ParseMethod(p.GetValue(method)!);
            string? llmPath = p.GetValue(llm);
            if (m != CoraMethod.Mf && llmPath is null) throw new ArgumentException($"--llm is required for --method {p.GetValue(method)}.");
            if (llmPath is not null && !File.Exists(llmPath) && !Directory.Exists(llmPath)) throw new FileNotFoundException($"LLM not found: '{llmPath}'.");
            var trainRows = InteractionTsv.Read(p.GetValue(train)!);
            var validRows = InteractionTsv.Read(p.GetValue(valid)!);
            var catalog = ItemCatalog.Read(p.GetValue(items)!);
            CheckTitles(trainRows.Concat(validRows), catalog, p.GetValue(items)!);
            c.Out.WriteLine($"data: {trainRows.Count} train rows, {validRows.Count} valid rows, {catalog.Count} items");
            var ml = new MLContext(seed: (int)p.GetValue(seed));
            using var progress = new ProgressPrinter(c.Out);
            ml.Log += (_, e) => { if (e.Source == "Cora" && e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info) progress.Line(e.RawMessage); };
            var options = new CoraTrainer.Options
            {
                LlmPath = llmPath, ItemTitles = catalog.Titles.ToDictionary(kv => kv.Key, kv => kv.Value), Method = m, Device = device, LlmDtype = dtype,
                Epochs = p.GetValue(epochs), BatchSize = p.GetValue(batch), LearningRate = p.GetValue(lr), MaxTrainRows = p.GetValue(maxRows),
                MaxSteps = p.GetValue(maxSteps), ValidateEvery = p.GetValue(validateEvery), MaxValidationRows = p.GetValue(maxValid), Seed = p.GetValue(seed), CheckpointDirectory = p.GetValue(ckpt),
                ValidationData = ml.Data.LoadFromEnumerable(InteractionRow.From(validRows)),
                MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = p.GetValue(mfDim), MaxEpochs = p.GetValue(mfEpochs) },
                Model = new CoraModelOptions
                {
                    QueryGenerator = new QueryGeneratorOptions { NumLayers = p.GetValue(genLayers), Hidden = p.GetValue(genHidden), FeedForward = p.GetValue(genFfn), Heads = Math.Min(8, Math.Max(1, p.GetValue(genHidden) / 32)) },
                },
                CancellationToken = c.Ct,
            };
            var trainView = ml.Data.LoadFromEnumerable(InteractionRow.From(trainRows));
            var model = ml.Recommendation().Trainers.Cora(options).Fit(trainView);
            // Atomic: a failure mid-save leaves an existing model file intact.
            Microsoft.ML.Cora.Llm.AtomicFile.Write(p.GetValue(output)!, s => ml.Model.Save(model, trainView.Schema, s));
            var metrics = EvaluateRows(ml, model, validRows);
            progress.Done();
            Print(c.Out, metrics);
            long peak = Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024);
            c.Out.WriteLine($"wall time {sw.Elapsed:hh\\:mm\\:ss}, peak working set {peak} MiB, model {p.GetValue(output)}");
            if (p.GetValue(json) is { } j) WriteJson(j, metrics, new JsonObject { ["method"] = p.GetValue(method), ["wall_seconds"] = sw.Elapsed.TotalSeconds, ["peak_mib"] = peak });
            if (p.GetValue(plot) is { } png)
            {
                var r = model.TrainingResult;
                PngPlot.Write(png, "training", new[]
                {
                    ("loss", (220, 50, 50), (IReadOnlyList<(double, double)>)(r?.LossCurve.Select(x => ((double)x.step, x.loss)).ToList() ?? new())),
                    ("valid AUC", (40, 90, 220), (IReadOnlyList<(double, double)>)(r?.ValidationCurve.Select(x => ((double)x.step, x.auc)).ToList() ?? new())),
                });
                c.Out.WriteLine($"plot: {png} (red: training loss, blue: validation AUC)");
            }
            return 0;
        });
        return cmd;
    }

    private static Command Evaluate(Context c)
    {
        var model = Req("--model", "A model zip written by 'cora train'.");
        var data = Req("--data", "Interactions to score (TSV).");
        var items = new Option<string?>("--items") { Description = "Item titles, checked against the data (the model carries its own catalog)." };
        var json = new Option<string?>("--json") { Description = "Write {auc, uauc, logloss, rows, warm, cold} here." };
        var batch = new Option<int>("--batch-size") { Description = "Rows per LLM forward when scoring (0 = the model's own setting).", DefaultValueFactory = _ => 0 };
        var cmd = new Command("evaluate", "Score a data file and print AUC, UAUC, log loss, row counts, overall and warm/cold, and rows/s.") { model, data, items, json, batch };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (ml, t) = Load(p.GetValue(model)!, dev.Get(p), p.GetValue(batch));
            var rows = InteractionTsv.Read(p.GetValue(data)!);
            if (p.GetValue(items) is { } itemsPath) CheckTitles(rows, ItemCatalog.Read(itemsPath), itemsPath);
            CheckTitles(rows, t.Model.Items, p.GetValue(model)! + " (its item catalog)");
            var sw = Stopwatch.StartNew();
            var metrics = EvaluateRows(ml, t, rows);
            double rowsPerSecond = rows.Count / sw.Elapsed.TotalSeconds;
            Print(c.Out, metrics);
            c.Out.WriteLine($"scored {rows.Count} rows in {sw.Elapsed.TotalSeconds:F1} s ({rowsPerSecond:F0} rows/s, batch {t.ScoringBatchSize}, {t.Model.Device})");
            if (p.GetValue(json) is { } j) WriteJson(j, metrics, new JsonObject { ["rows_per_s"] = rowsPerSecond, ["device"] = t.Model.Device.ToString() });
            return 0;
        });
        return cmd;
    }

    private static Option<string?> HistoryOption() => new("--data") { Description = "Interactions (TSV) from which the user's liked history is taken (latest first)." };

    private static Command Predict(Context c)
    {
        var model = Req("--model", "A model zip written by 'cora train'.");
        var user = new Option<int>("--user") { Description = "User id.", Required = true };
        var items = Req("--items", "Comma-separated item ids to score.");
        var data = HistoryOption();
        var cmd = new Command("predict", "Score items for a user, best first.") { model, user, items, data };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (ml, t) = Load(p.GetValue(model)!, dev.Get(p));
            int u = p.GetValue(user);
            RequireKnownUser(t, u);
            var ids = p.GetValue(items)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out var v) ? v : throw new ArgumentException($"--items: '{s}' is not an item id.")).ToArray();
            foreach (var i in ids) if (!t.Model.Items.Contains(i)) throw new ArgumentException($"item {i} is not in the model's item catalog.");
            var history = History(p.GetValue(data), u);
            var scored = Score(ml, t, u, ids, history);
            c.Out.WriteLine($"user {u} ({history.Length} history items)");
            foreach (var (id, prob) in scored) c.Out.WriteLine($"{prob:F4}  {id,6}  {t.Model.Items.Title(id)}");
            return 0;
        });
        return cmd;
    }

    private static Command Recommend(Context c)
    {
        var model = Req("--model", "A model zip written by 'cora train'.");
        var user = new Option<int>("--user") { Description = "User id.", Required = true };
        var top = new Option<int>("--top") { Description = "How many items to print.", DefaultValueFactory = _ => 10 };
        var candidates = new Option<int>("--candidates") { Description = "Candidates retrieved with the CF stage before re-ranking.", DefaultValueFactory = _ => 50 };
        var data = HistoryOption();
        var cmd = new Command("recommend", "Retrieve candidates with the CF stage, re-rank them with the model, print titles and probabilities.") { model, user, top, candidates, data };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (ml, t) = Load(p.GetValue(model)!, dev.Get(p));
            int u = p.GetValue(user), k = p.GetValue(top);
            if (k < 1) throw new ArgumentException("--top must be at least 1.");
            RequireKnownUser(t, u);
            var history = History(p.GetValue(data), u);
            var seen = history.ToHashSet();
            var cf = t.Model.Cf;
            var all = cf.Items.Ids.Select(i => (int)i).Where(i => !seen.Contains(i) && t.Model.Items.Contains(i)).ToArray();
            var cfScores = cf.ScoreRows(all.Select(i => new Interaction(u, i, false, 0, true, Array.Empty<int>())).ToList());
            var cand = all.Zip(cfScores).OrderByDescending(x => x.Second).Take(Math.Max(k, p.GetValue(candidates))).Select(x => x.First).ToArray();
            var ranked = Score(ml, t, u, cand, history).Take(k).ToList();
            c.Out.WriteLine($"top {ranked.Count} for user {u} (from {cand.Length} CF candidates, re-ranked by {t.Model.Options.Method})");
            foreach (var (id, prob) in ranked) c.Out.WriteLine($"{prob:F4}  {id,6}  {t.Model.Items.Title(id)}");
            return 0;
        });
        return cmd;
    }

    private static Command Quickstart(Context c)
    {
        var shared = new Option<string?>("--shared") { Description = "The shared folder (default: ../shared from the repository, or CORA_SHARED)." };
        var rows = new Option<int>("--max-rows") { DefaultValueFactory = _ => 4000, Description = "Training rows for the CoRA run (a seeded random sample; batch 16)." };
        var synthetic = new Option<bool>("--synthetic") { Description = "Use the self-generated synthetic data and random LLaMA even when ../shared exists." };
        var cmd = new Command("quickstart", "Train MF and CoRA and print the metric table: MovieLens-1M (CoLLM split) with stories260K when ../shared is present, else a labelled synthetic stand-in.") { shared, rows, synthetic };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (device, dtype) = dev.Get(p);
            CoraDevice.Resolve(device);
            string? dir = p.GetValue(synthetic) ? null : p.GetValue(shared) ?? FindShared();
            string trainPath, validPath, itemsPath, llmPath, label;
            if (dir is not null)
            {
                string D(params string[] x) => Path.Combine(new[] { dir }.Concat(x).ToArray());
                (trainPath, validPath, itemsPath, llmPath) = (D("data", "ml-1m-collm", "train.tsv"), D("data", "ml-1m-collm", "valid.tsv"), D("data", "ml-1m-collm", "items.tsv"), D("models", "stories260K", "stories260K.bin"));
                label = "MovieLens-1M (CoLLM split) with stories260K (real, pretrained, 260K parameters)";
            }
            else
            {
                var gen = SyntheticSetup.Create(Path.Combine(Path.GetTempPath(), "cora-quickstart-synthetic"));
                (trainPath, validPath, itemsPath, llmPath) = (gen.Train, gen.Valid, gen.Items, gen.Llm);
                label = "SYNTHETIC data and a RANDOMLY INITIALISED LLaMA generated by Cora (../shared not found): the numbers show that the pipeline runs, not model quality";
            }
            var train = InteractionTsv.Read(trainPath);
            var valid = InteractionTsv.Read(validPath);
            var items = ItemCatalog.Read(itemsPath);
            c.Out.WriteLine($"{label}\n{train.Count} train, {valid.Count} valid rows, {items.Count} items");
            var ml = new MLContext(seed: 2023);
            using var progress = new ProgressPrinter(c.Out);
            ml.Log += (_, e) => { if (e.Source == "Cora" && e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info) progress.Line(e.RawMessage); };
            var trainView = ml.Data.LoadFromEnumerable(InteractionRow.From(train));
            var validView = ml.Data.LoadFromEnumerable(InteractionRow.From(valid));
            var titles = items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
            var table = new List<(string, RecommendationMetrics)>();
            var mf = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options { Method = CoraMethod.Mf, ItemTitles = titles, ValidationData = validView, Device = device, CancellationToken = c.Ct }).Fit(trainView);
            table.Add(("mf", EvaluateRows(ml, mf, valid)));
            var cora = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
            {
                Method = CoraMethod.Cora, ItemTitles = titles, LlmPath = llmPath, ValidationData = validView, Device = device, LlmDtype = dtype,
                MaxTrainRows = p.GetValue(rows), BatchSize = 16, ValidateEvery = 125, MaxValidationRows = 400, CollaborativeModel = mf.Model.Cf, CancellationToken = c.Ct,
                // The synthetic stand-in uses a 2-layer generator to stay within a few minutes; the real run uses CoRA's defaults.
                Model = dir is null ? new CoraModelOptions { QueryGenerator = new QueryGeneratorOptions { NumLayers = 2, Hidden = 128, Heads = 4, FeedForward = 512 } } : new CoraModelOptions(),
            }).Fit(trainView);
            table.Add(("cora", EvaluateRows(ml, cora, valid)));
            progress.Done();
            c.Out.WriteLine();
            c.Out.WriteLine($"method  AUC     UAUC    warm AUC  cold AUC  logloss   (valid split{(dir is null ? ", SYNTHETIC" : "")})");
            foreach (var (name, m) in table)
                c.Out.WriteLine($"{name,-7} {m.Overall.Auc:F4}  {m.Overall.Uauc:F4}  {m.Warm.Auc:F4}    {m.Cold.Auc:F4}    {m.Overall.LogLoss:F4}");
            return 0;
        });
        return cmd;
    }

    private static Command DataCommand(Context c)
    {
        var cmd = new Command("data", "Convert public data sets to Cora's TSV layout (train/valid/test/items.tsv).");
        Command Recipe(string name, string desc, Option<string> a, Option<string> b, Func<string, string, SplitDataset> run)
        {
            var outDir = Req("--out", "Output folder.");
            var sub = new Command(name, desc) { a, b, outDir };
            sub.SetAction(p =>
            {
                var ds = run(p.GetValue(a)!, p.GetValue(b)!);
                ds.Write(p.GetValue(outDir)!);
                c.Out.WriteLine($"{name}: train {ds.Train.Count}, valid {ds.Valid.Count}, test {ds.Test.Count} rows; {ds.Items.Count} items; users {ds.Train.Concat(ds.Valid).Concat(ds.Test).Select(r => r.UserId).Distinct().Count()} -> {p.GetValue(outDir)}");
                return 0;
            });
            return sub;
        }
        cmd.Subcommands.Add(Recipe("movielens-1m", "MovieLens-1M ratings.dat + movies.dat -> CoLLM's split (label = rating > 3; 10/5/5 months from 2001-06).",
            Req("--ratings", "ratings.dat"), Req("--movies", "movies.dat"), DatasetRecipes.MovieLens1M));
        cmd.Subcommands.Add(Recipe("movielens-100k", "MovieLens-100K u.data + u.item -> time split 80/10/10 (label = rating > 3).",
            Req("--ratings", "u.data"), Req("--movies", "u.item"), DatasetRecipes.MovieLens100K));
        cmd.Subcommands.Add(Recipe("amazon", "Amazon reviews 2018 JSON lines + metadata -> CoLLM's Book recipe (2017, >20 ratings, label = 5 stars).",
            Req("--reviews", "reviews JSON lines"), Req("--meta", "metadata JSON lines"), (r, m) => DatasetRecipes.Amazon2018(r, m)));
        return cmd;
    }

    // ------------------------------------------------------------------ helpers

    private static (MLContext ml, CoraTransformer model) Load(string path, (string device, string dtype) on, int scoringBatchSize = 0)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model not found: '{path}'.");
        var ml = new MLContext(seed: 1);
        var loaded = ml.Model.LoadCora(path, out _, on.device, on.dtype);
        var t = loaded as CoraTransformer ?? (loaded as TransformerChain<ITransformer>)?.OfType<CoraTransformer>().FirstOrDefault()
                ?? throw new InvalidDataException($"'{path}' holds no Cora model.");
        if (scoringBatchSize > 0) t.ScoringBatchSize = scoringBatchSize;
        return (ml, t);
    }

    private static void RequireKnownUser(CoraTransformer t, int user)
    {
        if (!t.Model.Cf.KnowsUser(user))
            throw new ArgumentException($"user {user} is unknown to the model's CF stage (never seen in training); its scores would come from the cold-start fallback only.");
    }

    private static int[] History(string? dataPath, int user)
    {
        if (dataPath is null) return Array.Empty<int>();
        var rows = InteractionTsv.Read(dataPath).Where(r => r.UserId == user).OrderBy(r => r.Timestamp).ToList();
        if (rows.Count == 0) return Array.Empty<int>();
        var last = rows[^1];
        return last.History.Concat(last.Label ? new[] { last.ItemId } : Array.Empty<int>()).ToArray();
    }

    private static List<(int id, float prob)> Score(MLContext ml, CoraTransformer t, int user, int[] items, int[] history)
    {
        var view = ml.Data.LoadFromEnumerable(items.Select(i => new InteractionRow { UserId = user, ItemId = i, History = history }));
        var probs = t.Transform(view).GetColumn<float>("Probability").ToArray();
        return items.Zip(probs).OrderByDescending(x => x.Second).Select(x => (x.First, x.Second)).ToList();
    }

    private static string? FindShared()
    {
        var env = Environment.GetEnvironmentVariable("CORA_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var s = Path.Combine(d.FullName, "shared");
                if (Directory.Exists(Path.Combine(s, "data", "ml-1m-collm"))) return s;
            }
        return null;
    }

    public static CoraMethod ParseMethod(string s) => s.ToLowerInvariant() switch
    {
        "cora" => CoraMethod.Cora, "mf" => CoraMethod.Mf, "llm-lora" or "tallrec" => CoraMethod.LlmLora, "collm" => CoraMethod.Collm,
        _ => throw new ArgumentException($"unknown --method '{s}'. Use cora, mf, llm-lora or collm."),
    };

    private static void CheckTitles(IEnumerable<Interaction> rows, ItemCatalog items, string path)
    {
        var missing = items.MissingTargets(rows);
        if (missing.Count > 0) throw new InvalidDataException($"{path}: no title for item(s) {string.Join(", ", missing)}; add them to the items file.");
    }

    private static RecommendationMetrics EvaluateRows(MLContext ml, CoraTransformer model, IReadOnlyList<Interaction> rows)
    {
        var scored = model.Transform(ml.Data.LoadFromEnumerable(InteractionRow.From(rows)));
        var scores = scored.GetColumn<float>("Score").ToArray();
        // not_cold comes from the data file (CoLLM's definition), not from the model.
        return Metrics.Evaluate(scores, rows.Select(r => r.Label).ToArray(), rows.Select(r => r.UserId).ToArray(), rows.Select(r => r.NotCold).ToArray());
    }

    private static void Print(TextWriter o, RecommendationMetrics m)
    {
        o.WriteLine("split    rows    AUC     UAUC    logloss");
        foreach (var (n, s) in new[] { ("overall", m.Overall), ("warm", m.Warm), ("cold", m.Cold) })
            o.WriteLine($"{n,-8} {s.Rows,-7} {s.Auc:F4}  {s.Uauc:F4}  {s.LogLoss:F4}");
    }

    private static void WriteJson(string path, RecommendationMetrics m, JsonObject? extra)
    {
        static JsonNode? Num(double d) => double.IsNaN(d) ? null : JsonValue.Create(d);
        JsonObject Set(MetricSet s) => new() { ["auc"] = Num(s.Auc), ["uauc"] = Num(s.Uauc), ["logloss"] = Num(s.LogLoss), ["rows"] = s.Rows };
        var o = Set(m.Overall);
        o["warm"] = Set(m.Warm);
        o["cold"] = Set(m.Cold);
        if (extra is not null) foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        Microsoft.ML.Cora.Llm.AtomicFile.Write(path, s => s.Write(System.Text.Encoding.UTF8.GetBytes(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }))));
    }
}

/// <summary>Progress: one updating line on a terminal, plain lines when output is redirected.</summary>
internal sealed class ProgressPrinter : IDisposable
{
    private readonly TextWriter _out;
    private readonly bool _tty;
    private bool _open;
    public ProgressPrinter(TextWriter o) { _out = o; _tty = ReferenceEquals(o, Console.Out) && !Console.IsOutputRedirected; }
    public void Line(string s)
    {
        lock (this)
        {
            if (_tty && s.Contains(" step ") && s.Contains("rows/s")) { _out.Write("\r" + s.PadRight(Math.Max(0, Console.WindowWidth - 1))[..Math.Min(s.Length + 10, Math.Max(20, Console.WindowWidth - 1))]); _open = true; }
            else { if (_open) { _out.WriteLine(); _open = false; } _out.WriteLine(s); }
        }
    }
    public void Done() { lock (this) if (_open) { _out.WriteLine(); _open = false; } }
    public void Dispose() => Done();
}
