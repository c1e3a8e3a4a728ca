using BenchmarkDotNet.Attributes;
using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Data;

namespace Cora.Benchmarks;

/// <summary>
/// Scoring throughput of CoRA (stories260K, paper-default generator): ML.NET Transform (lazy batching cursor)
/// against CoraModel.Score on the same rows and batch size. Rows/s = Rows / mean time.
/// </summary>
[MemoryDiagnoser]
public class ScoringBenchmark
{
    public const int Rows = 64;
    private MLContext _ml = null!;
    private CoraTransformer _model = null!;
    private IDataView _view = null!;
    private List<Interaction> _rows = null!;

    [GlobalSetup]
    public void Setup()
    {
        torch_threads();
        string shared = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(Paths.Stories260K)))!;
        var train = InteractionTsv.Read(Path.Combine(shared, "data", "ml-1m-collm", "train.tsv"));
        var valid = InteractionTsv.Read(Path.Combine(shared, "data", "ml-1m-collm", "valid.tsv"));
        var items = ItemCatalog.Read(Path.Combine(shared, "data", "ml-1m-collm", "items.tsv"));
        _rows = valid.Take(Rows).ToList();
        _ml = new MLContext(seed: 1);
        var trainView = _ml.Data.LoadFromEnumerable(CoraInput.From(train.Take(2000)));
        _model = _ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
        {
            LlmPath = Paths.Stories260K, ItemTitles = items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value),
            MaxSteps = 1, ScoringBatchSize = 16, MatrixFactorization = new MatrixFactorizationOptions { MaxEpochs = 2 },
        }).Fit(trainView);
        _view = _ml.Data.LoadFromEnumerable(CoraInput.From(_rows).ToList());
    }

    private static void torch_threads() => TorchSharp.torch.set_num_threads(Environment.ProcessorCount);

    [Benchmark(Baseline = true, Description = "CoraModel.Score, 64 rows, batch 16")]
    public float Direct() => _model.Model.Score(_rows, 16).Sum();

    [Benchmark(Description = "ML.NET Transform + cursor, 64 rows, batch 16")]
    public float Transform()
    {
        float s = 0;
        foreach (var v in _model.Transform(_view).GetColumn<float>("Score")) s += v;
        return s;
    }
}
