// File-based app version of samples/notebooks/03-save-load-predict.ipynb, generated from the notebook's code cells (NotebookTests checks it; do not edit by hand).
// Run from this folder:  dotnet run 03-save-load-predict.cs
#:project ../src/Cora.Estimators/Cora.Estimators.csproj
#:property CoraNeedsLibTorch=true
#:property PublishAot=false

using System.IO;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;

// ../shared beside the checkout (or CORA_SHARED) holds the MovieLens-1M CoLLM split and the stories260K LLM.
// The folder beside the checkout that holds data/ml-1m-collm, found from wherever this runs (the repo, samples/, samples/notebooks/).
string FindShared()
{
    for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
        if (Directory.Exists(Path.Combine(d.FullName, "shared", "data", "ml-1m-collm"))) return Path.Combine(d.FullName, "shared");
    throw new DirectoryNotFoundException("No shared/ folder with data/ml-1m-collm above this folder: set CORA_SHARED to it.");
}
var shared = Environment.GetEnvironmentVariable("CORA_SHARED") ?? FindShared();
var dataDir = Path.Combine(shared, "data", "ml-1m-collm");
var llmPath = Path.Combine(shared, "models", "stories260K", "stories260K.bin");
var train = InteractionTsv.Read(Path.Combine(dataDir, "train.tsv"));
var valid = InteractionTsv.Read(Path.Combine(dataDir, "valid.tsv"));
var items = ItemCatalog.Read(Path.Combine(dataDir, "items.tsv"));
var titles = items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
Console.WriteLine($"{train.Count} train rows, {valid.Count} valid rows, {items.Count} items");

var ml = new MLContext(seed: 3);
var trainView = ml.Data.LoadFromEnumerable(CoraInput.From(train.Take(2000)));
var model = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
{
    LlmPath = llmPath, ItemTitles = titles, MaxSteps = 4,
    MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 32, MaxEpochs = 5 },
    Model = new CoraModelOptions { QueryGenerator = new QueryGeneratorOptions { NumLayers = 1, Hidden = 64, Heads = 2, FeedForward = 128 } },
}).Fit(trainView);
var path = Path.Combine(Path.GetTempPath(), $"cora-notebook-{Environment.ProcessId}.zip");
ml.Model.Save(model, trainView.Schema, path);

var fresh = new MLContext();
var loaded = fresh.Model.Load(path, out var schema);   // ML.NET's own call reads Cora models
var engine = fresh.Model.CreatePredictionEngine<CoraInput, CoraPrediction>(loaded);
var request = CoraInput.From(valid.Take(1)).Single();
var p1 = engine.Predict(request);
var p2 = ml.Model.CreatePredictionEngine<CoraInput, CoraPrediction>(model).Predict(request);
Console.WriteLine($"user {request.UserId}, item \"{items.Title(request.ItemId)}\": probability {p1.Probability:F4} (before save {p2.Probability:F4})");
if (p1.Score != p2.Score) throw new Exception("scores differ after save/load");
File.Delete(path);
