// File-based app version of samples/notebooks/01-quickstart.ipynb, generated from the notebook's code cells (NotebookTests checks it; do not edit by hand).
// Run from this folder:  dotnet run 01-quickstart.cs
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

var ml = new MLContext(seed: 1);
var trainView = ml.Data.LoadFromEnumerable(CoraInput.From(train.Take(3000)));
var validRows = valid.Take(300).ToList();
var validView = ml.Data.LoadFromEnumerable(CoraInput.From(validRows));
var mf = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
{
    Method = CoraMethod.Mf, ItemTitles = titles, ValidationData = validView,
    MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 32, MaxEpochs = 20 },
}).Fit(trainView);

var cora = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
{
    Method = CoraMethod.Cora, LlmPath = llmPath, ItemTitles = titles, ValidationData = validView,
    CollaborativeModel = mf.Model.Cf, MaxSteps = 20, ValidateEvery = 10,
    Model = new CoraModelOptions { QueryGenerator = new QueryGeneratorOptions { NumLayers = 2, Hidden = 128, Heads = 4, FeedForward = 256 } },
}).Fit(trainView);

foreach (var (name, model) in new[] { ("mf", mf), ("cora", cora) })
{
    var m = ml.Recommendation().Evaluate(model.Transform(validView), model);
    Console.WriteLine($"{name,-5} AUC {m.Overall.Auc:F4}  UAUC {m.Overall.Uauc:F4}  rows {m.Overall.Rows}");
}
