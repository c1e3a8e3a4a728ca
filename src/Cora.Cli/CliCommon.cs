using Microsoft.ML.Cora.IO;
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Runtime;
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
        var t = CoraTransformer.Find(ml.Model.LoadCora(path, out _, on.Device, on.Dtype, on.GeneratorDtype, llmPath));
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

/// <summary>--model and --llm, the same on every command that loads a saved model.</summary>
internal sealed record ModelOptions(Option<string> Model, Option<string?> Llm)
{
    /// <summary>Environment variable giving --llm's default (e.g. in a container where the LLM is mounted elsewhere).</summary>
    public const string LlmVariable = "CORA_LLM";

    public static ModelOptions Create(string modelHelp = "A model zip written by 'cora train'.")
    {
        var llm = new Option<string?>("--llm")
        {
            Description = $"The frozen LLM (Hugging Face folder or llama2.c .bin) where it is now, when not where the model was trained; checked against the SHA-256 the model records (default: ${LlmVariable}, else the recorded path).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(LlmVariable) is { Length: > 0 } v ? v : null,
        };
        llm.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } v && FileChecks.KindOf(v) is not (FileChecks.Kind.Regular or FileChecks.Kind.Directory))
                r.AddError($"--llm: '{ErrorText.Elide(v)}' is neither a llama2.c .bin file nor a Hugging Face folder{(r.Implicit ? $" (from ${LlmVariable})" : "")}.");
        });
        return new(Cli.Req("--model", modelHelp), llm);
    }

    public void AddTo(Command c) { c.Options.Add(Model); c.Options.Add(Llm); }

    /// <summary>Loads the model (and its LLM from --llm when given).</summary>
    public (MLContext ml, CoraTransformer model) Load(ParseResult p, DeviceChoice on, int scoringBatchSize = 0) =>
        Cli.Load(p.GetValue(Model)!, on, scoringBatchSize, p.GetValue(Llm));
}

/// <summary>--device, --llm-dtype and --generator-dtype, the same on every command that computes; checked before any work starts.</summary>
internal sealed record DeviceOptions(Option<string> Device, Option<string> Dtype, Option<string> GeneratorDtype, Option<int> Threads)
{
    /// <param name="generatorDtype">--generator-dtype's default (a command that must compute the same on every CPU pins fp32)</param>
    public static DeviceOptions Create(string generatorDtype = CoraDefaults.GeneratorDtype)
    {
        // Flags and help as the ML.NET options declare them (CoraTrainer.Options); the values are checked here, before any work.
        string Help(string property) => DeclaredOptions.Help(typeof(CoraTrainer.Options), property);
        var device = new Option<string>("--device") { Description = Help(nameof(CoraTrainer.Options.Device)), DefaultValueFactory = _ => CoraDefaults.Device };
        device.Validators.Add(r => { if (CoraDevice.DeviceError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--device: " + e + "."); });
        var dtype = new Option<string>("--llm-dtype") { Description = Help(nameof(CoraTrainer.Options.LlmDtype)), DefaultValueFactory = _ => CoraDefaults.LlmDtype };
        dtype.Validators.Add(r => { if (CoraDevice.DtypeError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--llm-dtype: " + e + "."); });
        var generator = new Option<string>("--generator-dtype") { Description = Help(nameof(CoraTrainer.Options.GeneratorDtype)), DefaultValueFactory = _ => generatorDtype };
        generator.Validators.Add(r => { if (CoraDevice.GeneratorDtypeError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--generator-dtype: " + e + "."); });
        var threads = Cli.Int("--threads", 0, Help(nameof(CoraTrainer.Options.Threads)));
        return new(device, dtype, generator, threads);
    }
    public void AddTo(Command c) { c.Options.Add(Device); c.Options.Add(Dtype); c.Options.Add(GeneratorDtype); c.Options.Add(Threads); }
    /// <summary>The device and dtypes; applies --threads to the process on the way.</summary>
    public DeviceChoice Get(ParseResult p)
    {
        CoraDevice.SetThreads(p.GetValue(Threads));
        return new(p.GetValue(Device)!, p.GetValue(Dtype)!, p.GetValue(GeneratorDtype)!);
    }
}

/// <summary>What <see cref="DeviceOptions"/> parsed: device, LLM dtype and generator dtype (as given; resolved where used).</summary>
internal sealed record DeviceChoice(string Device, string Dtype, string GeneratorDtype)
{
    public void Deconstruct(out string device, out string dtype) { device = Device; dtype = Dtype; }

    /// <summary>The generator products' dtype on <paramref name="device"/> (auto resolved), e.g. "bf16".</summary>
    public string GeneratorDtypeName(TorchSharp.torch.Device device) => CoraDevice.DtypeName(CoraDevice.ResolveGeneratorDtype(GeneratorDtype, device));

    /// <summary>The line the computing commands print: what the generator's products run in, and the option that chose it
    /// (<paramref name="where"/> qualifies it, e.g. " on a GPU").</summary>
    public string GeneratorLine(TorchSharp.torch.Device device, string where = "") =>
        $"generator products: {GeneratorDtypeName(device)} (--generator-dtype {GeneratorDtype}{where})";
}
