using Microsoft.ML.Cora.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Llm;

namespace Cora.Cli;

/// <summary>
/// The model and rows a workload benchmark runs on: a real LLM and real interactions (the shared stories260K and ML-1M train split
/// by default), the method's trainable parts freshly initialised, and a CF model with random embeddings for the data's ids
/// (the time of a step does not depend on the values). Without ../shared, Cora's generated synthetic stand-in, labelled.
/// </summary>
internal sealed class BenchSetup : IDisposable
{
    public required CoraModel Model { get; init; }
    public required List<Interaction> Rows { get; init; }
    public required string Label { get; init; }

    public static BenchSetup Create(CliContext c, string? llmPath, string? dataDir, CoraMethod method, QueryGeneratorOptions generator, ComputeTarget target)
    {
        string? shared = Cli.FindShared();
        string label;
        if (llmPath is null || dataDir is null)
        {
            if (shared is not null)
            {
                llmPath ??= Path.Combine(shared, "models", "stories260K", "stories260K.bin");
                dataDir ??= Path.Combine(shared, "data", "ml-1m-collm");
            }
            else
            {
                var gen = SyntheticSetup.Create(Path.Combine(Path.GetTempPath(), "cora-bench-synthetic"));
                llmPath ??= gen.Llm;
                dataDir ??= Path.GetDirectoryName(gen.Train)!;
            }
        }
        string train = Path.Combine(dataDir, "train.tsv"), items = Path.Combine(dataDir, "items.tsv");
        foreach (var f in new[] { train, items })
            if (!File.Exists(f)) throw new UsageException($"--data: '{f}' not found; give a folder with train.tsv and items.tsv.");
        var rows = InteractionTsv.Read(train);
        var catalog = ItemCatalog.Read(items);
        Cli.CheckTitles(rows, catalog, items);
        // A fixed random order: each repeat's batch has the data's usual mix of prompt lengths.
        var order = Seeded.Permutation(rows.Count, CoraDefaults.Seed, "bench-order");
        rows = order.Select(i => rows[i]).ToList();
        var llm = LanguageModel.Load(llmPath, target);
        var cf = new MatrixFactorization(new IdMap(rows.Select(r => (long)r.UserId)), new IdMap(rows.Select(r => (long)r.ItemId)), CoraDefaults.MfEmbeddingDim);
        var options = new CoraModelOptions { Method = method, QueryGenerator = generator };
        var model = new CoraModel(options, llm, cf, catalog);
        label = $"{method} on {Path.GetFileName(llmPath)} ({llm.Config.NumHiddenLayers} layers, hidden {llm.Config.HiddenSize}), {rows.Count} rows of {Path.GetFileName(dataDir)}, generator {(generator == QueryGeneratorOptions.Compact ? "compact" : "paper")}";
        c.Out.WriteLine($"bench: {label}; CF embeddings random (timing only){(shared is null ? "; SYNTHETIC stand-in (../shared not found)" : "")}");
        return new BenchSetup { Model = model, Rows = rows, Label = label };
    }

    /// <summary>Scoring through ML.NET: Transform over the rows, then a cursor reading Score.</summary>
    public Func<IReadOnlyList<Interaction>, float[]> Transform(int batch)
    {
        var ml = Cli.NewContext(1);
        var t = CoraTransformer.Create(ml, Model, batch);
        return rows => t.Transform(ml.Data.LoadFromEnumerable(CoraInput.From(rows))).GetColumn<float>(nameof(CoraPrediction.Score)).ToArray();
    }

    public void Dispose() => Model.Dispose();
}
