using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Training;

namespace Cora.Cli;

public static class Commands
{
    private static Option<string> Req(string name, string desc) => new(name) { Description = desc, Required = true };

    public static Command Train()
    {
        var train = Req("--train", "Training interactions (TSV: uid iid label timestamp not_cold his).");
        var valid = Req("--valid", "Validation interactions (same layout); model selection uses a fixed random half.");
        var items = Req("--items", "Item titles (TSV: iid title).");
        var llm = new Option<string?>("--llm") { Description = "Hugging Face model folder or llama2.c .bin (tokenizer beside it). Not needed for --method mf." };
        var method = new Option<string>("--method") { Description = "cora | mf | llm-lora | collm", DefaultValueFactory = _ => "cora" };
        var output = Req("--out", "Where to write the model zip.");
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 1, Description = "Training epochs of the LLM-based methods." };
        var maxRows = new Option<int>("--max-rows") { DefaultValueFactory = _ => 0, Description = "Use at most N training rows (0 = all)." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 2023 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 8 };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 1e-3, Description = "Peak learning rate." };
        var validateEvery = new Option<int>("--validate-every") { DefaultValueFactory = _ => 500 };
        var maxValid = new Option<int>("--max-valid-rows") { DefaultValueFactory = _ => 0, Description = "Cap on validation rows used for model selection (0 = half of valid)." };
        var mfDim = new Option<int>("--mf-dim") { DefaultValueFactory = _ => 256 };
        var ckpt = new Option<string?>("--checkpoint-dir") { Description = "Resumable checkpoints go here; a rerun resumes from them." };
        var json = new Option<string?>("--json") { Description = "Also write the validation metrics, wall time and peak memory as JSON." };
        var cmd = new Command("train", "Train the CF stage and a method, save the model, report validation metrics.")
        { train, valid, items, llm, method, output, epochs, maxRows, seed, batch, lr, validateEvery, maxValid, mfDim, ckpt, json };
        cmd.SetAction((p, ct) =>
        {
            var sw = Stopwatch.StartNew();
            var m = ParseMethod(p.GetValue(method)!);
            var trainRows = InteractionTsv.Read(p.GetValue(train)!);
            var validRows = InteractionTsv.Read(p.GetValue(valid)!);
            var catalog = ItemCatalog.Read(p.GetValue(items)!);
            CheckTitles(trainRows.Concat(validRows), catalog, p.GetValue(items)!);
            long s = p.GetValue(seed);
            Console.WriteLine($"data: {trainRows.Count} train rows, {validRows.Count} valid rows, {catalog.Count} items");
            var mf = MatrixFactorization.Train(trainRows, validRows, new MatrixFactorizationOptions { EmbeddingDim = p.GetValue(mfDim), Seed = s },
                line => { if (line.EndsWith("0") || true) Console.WriteLine(line); }, ct);
            LanguageModel? lm = null;
            if (m != CoraMethod.Mf)
            {
                var llmPath = p.GetValue(llm) ?? throw new ArgumentException($"--llm is required for --method {p.GetValue(method)}.");
                lm = LanguageModel.Load(llmPath);
                Console.WriteLine($"llm: {llmPath} (hidden {lm.Config.HiddenSize}, {lm.Config.NumHiddenLayers} layers, vocab {lm.Config.VocabSize})");
            }
            using var model = new CoraModel(new CoraModelOptions { Method = m, Seed = s }, lm, mf, catalog);
            if (m != CoraMethod.Mf)
            {
                var prog = new Progress<TrainingProgress>(pr =>
                {
                    if (pr.Step % 25 == 0 || pr.Step == pr.TotalSteps)
                        Console.WriteLine($"step {pr.Step}/{pr.TotalSteps} loss {pr.Loss:F4} {pr.RowsPerSecond:F1} rows/s ETA {pr.Eta:hh\\:mm\\:ss} last valid AUC {(pr.LastValidationAuc is { } a ? a.ToString("F4") : "-")}");
                });
                CoraModelTrainer.Train(model, trainRows, validRows, new TrainingOptions
                {
                    Epochs = p.GetValue(epochs), MaxTrainRows = p.GetValue(maxRows), Seed = s, BatchSize = p.GetValue(batch),
                    LearningRate = p.GetValue(lr), ValidateEvery = p.GetValue(validateEvery), MaxValidationRows = p.GetValue(maxValid),
                    CheckpointDirectory = p.GetValue(ckpt),
                }, prog, Console.WriteLine, ct);
            }
            model.Save(p.GetValue(output)!);
            var metrics = Evaluate(model, validRows, ct);
            Print(metrics);
            var peak = Process.GetCurrentProcess().PeakWorkingSet64;
            Console.WriteLine($"wall time {sw.Elapsed:hh\\:mm\\:ss}, peak working set {peak / (1024 * 1024)} MiB, model {p.GetValue(output)}");
            if (p.GetValue(json) is { } j) WriteJson(j, metrics, new JsonObject { ["method"] = p.GetValue(method), ["wall_seconds"] = sw.Elapsed.TotalSeconds, ["peak_mib"] = peak / (1024 * 1024) });
            return Task.FromResult(0);
        });
        return cmd;
    }

    public static Command Evaluate()
    {
        var model = Req("--model", "A model zip written by 'cora train'.");
        var data = Req("--data", "Interactions to score (TSV).");
        var items = new Option<string?>("--items") { Description = "Item titles (defaults to the catalog saved in the model)." };
        var json = new Option<string?>("--json") { Description = "Write {auc, uauc, logloss, rows, warm, cold} here." };
        var llm = new Option<string?>("--llm") { Description = "Where the LLM is now, if it moved since training." };
        var cmd = new Command("evaluate", "Score a data file and print AUC, UAUC, log loss, overall and warm/cold.") { model, data, items, json, llm };
        cmd.SetAction((p, ct) =>
        {
            using var m = CoraModel.Load(p.GetValue(model)!, p.GetValue(llm));
            var rows = InteractionTsv.Read(p.GetValue(data)!);
            var metrics = Evaluate(m, rows, ct);
            Print(metrics);
            if (p.GetValue(json) is { } j) WriteJson(j, metrics, null);
            return Task.FromResult(0);
        });
        return cmd;
    }

    public static Command Quickstart()
    {
        var shared = new Option<string?>("--shared") { Description = "The shared folder (default: ../shared from the repository root, or CORA_SHARED)." };
        var rows = new Option<int>("--max-rows") { DefaultValueFactory = _ => 2000, Description = "Training rows for the LLM-based run." };
        var cmd = new Command("quickstart", "Train MF and CoRA on MovieLens-1M (CoLLM split) with stories260K, print the metric table.") { shared, rows };
        cmd.SetAction((p, ct) =>
        {
            string? dir = p.GetValue(shared) ?? FindShared();
            if (dir is null)
                throw new DirectoryNotFoundException("quickstart needs the shared data and model (../shared with data/ml-1m-collm and models/stories260K); pass --shared DIR or set CORA_SHARED.");
            string d(params string[] x) => Path.Combine(new[] { dir }.Concat(x).ToArray());
            var train = InteractionTsv.Read(d("data", "ml-1m-collm", "train.tsv"));
            var valid = InteractionTsv.Read(d("data", "ml-1m-collm", "valid.tsv"));
            var items = ItemCatalog.Read(d("data", "ml-1m-collm", "items.tsv"));
            Console.WriteLine($"MovieLens-1M (CoLLM split): {train.Count} train, {valid.Count} valid rows; LLM: stories260K (real, pretrained)");
            var mf = MatrixFactorization.Train(train, valid, new MatrixFactorizationOptions(), null, ct);
            var table = new List<(string, RecommendationMetrics)>();
            using (var mfModel = new CoraModel(new CoraModelOptions { Method = CoraMethod.Mf }, null, mf, items))
                table.Add(("mf", Evaluate(mfModel, valid, ct)));
            using var cora = new CoraModel(new CoraModelOptions { Method = CoraMethod.Cora }, LanguageModel.Load(d("models", "stories260K", "stories260K.bin")), mf, items);
            CoraModelTrainer.Train(cora, train, valid, new TrainingOptions { MaxTrainRows = p.GetValue(rows), ValidateEvery = 100, MaxValidationRows = 1000 },
                new Progress<TrainingProgress>(pr => { if (pr.Step % 25 == 0) Console.WriteLine($"cora step {pr.Step}/{pr.TotalSteps} loss {pr.Loss:F4} {pr.RowsPerSecond:F1} rows/s ETA {pr.Eta:mm\\:ss}"); }),
                Console.WriteLine, ct);
            table.Add(("cora", Evaluate(cora, valid, ct)));
            Console.WriteLine();
            Console.WriteLine("method   AUC     UAUC    warm AUC  cold AUC  logloss");
            foreach (var (name, m) in table)
                Console.WriteLine($"{name,-8} {m.Overall.Auc:F4}  {m.Overall.Uauc:F4}  {m.Warm.Auc:F4}    {m.Cold.Auc:F4}    {m.Overall.LogLoss:F4}");
            return Task.FromResult(0);
        });
        return cmd;
    }

    private static string? FindShared()
    {
        var env = Environment.GetEnvironmentVariable("CORA_SHARED");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            var d = new DirectoryInfo(start);
            while (d is not null)
            {
                var s = Path.Combine(d.FullName, "shared");
                if (Directory.Exists(Path.Combine(s, "data", "ml-1m-collm"))) return s;
                d = d.Parent;
            }
        }
        return null;
    }

    public static CoraMethod ParseMethod(string s) => s.ToLowerInvariant() switch
    {
        "cora" => CoraMethod.Cora, "mf" => CoraMethod.Mf, "llm-lora" or "tallrec" => CoraMethod.LlmLora, "collm" => CoraMethod.Collm,
        _ => throw new ArgumentException($"Unknown --method '{s}'. Use cora, mf, llm-lora or collm."),
    };

    private static void CheckTitles(IEnumerable<Interaction> rows, ItemCatalog items, string path)
    {
        var missing = rows.Select(r => r.ItemId).Where(i => !items.Contains(i)).Distinct().Take(5).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{path}: no title for item(s) {string.Join(", ", missing)} used as targets; add them to the items file.");
    }

    public static RecommendationMetrics Evaluate(CoraModel m, IReadOnlyList<Interaction> rows, CancellationToken ct)
    {
        var scores = m.Score(rows, 32, ct);
        return Metrics.Evaluate(scores, rows.Select(r => r.Label).ToArray(), rows.Select(r => r.UserId).ToArray(), rows.Select(r => r.NotCold).ToArray());
    }

    private static void Print(RecommendationMetrics m)
    {
        Console.WriteLine("split    rows    AUC     UAUC    logloss");
        foreach (var (n, s) in new[] { ("overall", m.Overall), ("warm", m.Warm), ("cold", m.Cold) })
            Console.WriteLine($"{n,-8} {s.Rows,-7} {s.Auc:F4}  {s.Uauc:F4}  {s.LogLoss:F4}");
    }

    private static void WriteJson(string path, RecommendationMetrics m, JsonObject? extra)
    {
        JsonObject Set(MetricSet s) => new() { ["auc"] = Num(s.Auc), ["uauc"] = Num(s.Uauc), ["logloss"] = Num(s.LogLoss), ["rows"] = s.Rows };
        var o = Set(m.Overall);
        o["warm"] = Set(m.Warm);
        o["cold"] = Set(m.Cold);
        if (extra is not null) foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        File.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static JsonNode? Num(double d) => double.IsNaN(d) ? null : JsonValue.Create(d);
}
