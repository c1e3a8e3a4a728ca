using Microsoft.ML.Cora.IO;
using System.CommandLine;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.CollaborativeFiltering;

namespace Cora.Cli;

internal sealed record CliContext(TextWriter Out, TextWriter Err, CancellationToken Ct);

/// <summary>Helpers shared by the commands.</summary>
internal static class Cli
{
    public static Option<string> Req(string name, string desc) => new(name) { Description = desc, Required = true };

    /// <summary>The option's value for a validator, or false when its text did not parse (System.CommandLine reports that itself;
    /// reading the value would throw).</summary>
    public static bool Parsed<T>(this System.CommandLine.Parsing.OptionResult r, out T value)
    {
        try { value = r.GetValueOrDefault<T>(); return true; }
        catch (InvalidOperationException) { value = default!; return false; }
    }

    public static Option<int> Int(string name, int dflt, string desc, int min = 0)
    {
        var o = new Option<int>(name) { Description = desc, DefaultValueFactory = _ => dflt };
        o.Validators.Add(r => { if (r.Parsed(out int v) && v < min) r.AddError($"{name} must be at least {min}."); });
        return o;
    }

    public static Option<double> Real(string name, double dflt, string desc, double min, double max, bool minExclusive = false)
    {
        var o = new Option<double>(name) { Description = desc, DefaultValueFactory = _ => dflt };
        o.Validators.Add(r =>
        {
            if (!r.Parsed(out double v)) return;
            if (!double.IsFinite(v) || v < min || (minExclusive && v == min) || v > max)
                r.AddError($"{name}: {v} is out of range; use a finite value {(minExclusive ? "above" : "from")} {min} to {max}.");
        });
        return o;
    }

    public static CoraMethod ParseMethod(string s) => s.ToLowerInvariant() switch
    {
        "cora" => CoraMethod.Cora, "mf" => CoraMethod.Mf, "llm-lora" or "tallrec" => CoraMethod.LlmLora, "collm" => CoraMethod.Collm,
        _ => throw new UsageException($"unknown --method '{s}'. Use cora, mf, llm-lora or collm."),
    };

    public static (MLContext ml, CoraTransformer model) Load(string path, DeviceChoice on, int scoringBatchSize = 0, string? llmPath = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"model not found: '{path}'.");
        var ml = NewContext(1);
        bool bare;
        try { using var z = ZipFile.OpenRead(path); bare = ModelArchive.IsBareModel(z); }
        catch (InvalidDataException) { bare = false; }     // LoadCora says what is wrong with the file
        CoraTransformer t;
        if (bare)
        {
            // A model saved by the library (CoraModel.Save) scores with the default columns.
            var model = CoraModel.Load(path, llmPath, on.Device, on.Dtype);
            if (on.GeneratorDtype is not null) model.GeneratorDtype = on.GeneratorDtype;
            t = CoraTransformer.Create(ml, model);
        }
        else t = CoraTransformer.Find(ml.Model.LoadCora(path, out _, on.Device, on.Dtype, on.GeneratorDtype, llmPath));
        if (scoringBatchSize > 0) t.ScoringBatchSize = scoringBatchSize;
        return (ml, t);
    }

    /// <summary>An MLContext whose own temporary files (ML.NET unpacks models into <c>ml_dotnet*</c> folders) live in this process's
    /// scratch folder, so that a killed run leaves none behind for long (<see cref="ScratchSpace"/>).</summary>
    public static MLContext NewContext(int seed) => new(seed) { TempFilePath = ScratchSpace.NewFolder("mlnet") };

    public static void CheckTitles(IEnumerable<Interaction> rows, ItemCatalog items, string path)
    {
        var missing = items.MissingTargets(rows);
        if (missing.Count > 0) throw new InvalidDataException($"{path}: no title for item(s) {string.Join(", ", missing)}; add them to the items file.");
    }

    /// <summary>Scores rows and computes the metrics; warm/cold as Cora defines it (the model's CF stage knows user and item),
    /// or from the data's not_cold column when <paramref name="warmFromData"/>.</summary>
    public static RecommendationMetrics EvaluateRows(MLContext ml, CoraTransformer model, IReadOnlyList<Interaction> rows, bool warmFromData = false)
    {
        var scored = model.Transform(ml.Data.LoadFromEnumerable(CoraInput.From(rows)));
        var scores = scored.GetColumn<float>("Score").ToArray();
        var warm = warmFromData ? rows.Select(r => r.NotCold).ToArray() : rows.Select(r => CollaborativeModels.IsWarm(model.Model.Cf, r.UserId, r.ItemId)).ToArray();
        return Metrics.Evaluate(scores, rows.Select(r => r.Label).ToArray(), rows.Select(r => r.UserId).ToArray(), warm);
    }

    public static void Print(TextWriter o, RecommendationMetrics m)
    {
        o.WriteLine("split    rows    AUC     UAUC    logloss(bits)  UAUC users (skipped: one row or one class)");
        foreach (var (n, s) in new[] { ("overall", m.Overall), ("warm", m.Warm), ("cold", m.Cold) })
            o.WriteLine($"{n,-8} {s.Rows,-7} {s.Auc:F4}  {s.Uauc:F4}  {s.LogLoss:F4}         {s.UsersCounted} ({s.UsersSkipped})");
    }

    public static void WriteJson(string path, RecommendationMetrics m, JsonObject? extra)
    {
        static JsonNode? Num(double d) => double.IsFinite(d) ? JsonValue.Create(d) : null;
        JsonObject Set(MetricSet s) => new() { ["auc"] = Num(s.Auc), ["uauc"] = Num(s.Uauc), ["logloss"] = Num(s.LogLoss), ["logloss_nats"] = Num(s.LogLossNats), ["rows"] = s.Rows, ["uauc_users"] = s.UsersCounted, ["uauc_users_skipped"] = s.UsersSkipped };
        var o = Set(m.Overall);
        o["warm"] = Set(m.Warm);
        o["cold"] = Set(m.Cold);
        if (extra is not null) foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        WriteJson(path, o);
    }

    /// <summary>Checks output paths against each other and the inputs (as files: links resolved, device and inode compared) before any
    /// work; a problem is a usage error naming the option.</summary>
    public static void CheckOutputs(IEnumerable<(string name, string? path)> outputs, IEnumerable<string?> inputs)
    {
        var problems = FileChecks.CheckOutputs(outputs, inputs);
        if (problems.Count > 0) throw new UsageException(string.Join(" ", problems.Select(x => $"{x.name}: {x.problem}")));
    }

    /// <summary>Writes an indented JSON object atomically.</summary>
    public static void WriteJson(string path, JsonObject o) =>
        Microsoft.ML.Cora.IO.AtomicFile.Write(path, s => s.Write(System.Text.Encoding.UTF8.GetBytes(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }))));

    public static string? FindShared()
    {
        var env = Environment.GetEnvironmentVariable("CORA_SHARED");
        if (env == "none") return null;
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var s = Path.Combine(d.FullName, "shared");
                if (Directory.Exists(Path.Combine(s, "data", "ml-1m-collm"))) return s;
            }
        return null;
    }

    /// <summary>The error for a user the model's CF stage never saw (predict and recommend refuse them).</summary>
    public static ArgumentException UnknownUser(int user) =>
        new($"user {user} is unknown to the model's CF stage (never seen in training); its scores would come from the cold-start fallback only.");

    public static Option<string?> HistoryOption() => new("--data") { Description = "Interactions (TSV) from which the user's liked history is taken (default: what the model remembers from training)." };

    /// <summary>The user's liked history from a data file (the last row's history plus its item when liked), or null.</summary>
    public static int[]? History(string? dataPath, int user)
    {
        if (dataPath is null) return null;
        var rows = InteractionTsv.Read(dataPath).Where(r => r.UserId == user).OrderBy(r => r.Timestamp).ToList();
        if (rows.Count == 0) return Array.Empty<int>();
        var last = rows[^1];
        return last.History.Concat(last.Label ? new[] { last.ItemId } : Array.Empty<int>()).ToArray();
    }
}
