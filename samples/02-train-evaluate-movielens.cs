// File-based app version of samples/notebooks/02-train-evaluate-movielens.ipynb, generated from the notebook's code cells (NotebookTests checks it; do not edit by hand).
// Run from this folder:  dotnet run 02-train-evaluate-movielens.cs
#:project ../src/Cora.Estimators/Cora.Estimators.csproj
#:project ../src/Cora.Plots/Cora.Plots.csproj
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

var ml = new MLContext(seed: 2);
var trainView = ml.Data.LoadFromEnumerable(CoraInput.From(train.Take(2000)));
var validRows = valid.Skip(500).Take(200).ToList();
var validView = ml.Data.LoadFromEnumerable(CoraInput.From(validRows));
var model = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
{
    LlmPath = llmPath, ItemTitles = titles, ValidationData = validView, MaxSteps = 16, ValidateEvery = 4,
    MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 32, MaxEpochs = 10 },
    Model = new CoraModelOptions { QueryGenerator = new QueryGeneratorOptions { NumLayers = 2, Hidden = 128, Heads = 4, FeedForward = 256 } },
}).Fit(trainView);

var scored = model.Transform(validView);
var scores = scored.GetColumn<float>("Score").ToArray();
var metrics = Microsoft.ML.Cora.Evaluation.Metrics.Evaluate(scores, validRows.Select(r => r.Label).ToArray(),
    validRows.Select(r => r.UserId).ToArray(), validRows.Select(r => r.NotCold).ToArray());
Console.WriteLine($"overall {metrics.Overall}\nwarm    {metrics.Warm}\ncold    {metrics.Cold}");

var r = model.TrainingResult!;
var png = Path.Combine(Path.GetTempPath(), "cora-training-curves.png");
var plot = new ScottPlot.Plot();                     // loss and validation AUC against the step, each on its own axis
plot.XLabel("optimiser step");
var loss = plot.Add.Scatter(r.LossCurve.Select(x => (double)x.step).ToArray(), r.LossCurve.Select(x => x.loss).ToArray());
loss.LegendText = "training loss (nats)"; loss.MarkerSize = 0;
var auc = plot.Add.Scatter(r.ValidationCurve.Select(x => (double)x.step).ToArray(), r.ValidationCurve.Select(x => x.auc).ToArray());
auc.LegendText = "validation AUC"; auc.Axes.YAxis = plot.Axes.Right;
plot.Axes.Left.Label.Text = "training loss"; plot.Axes.Right.Label.Text = "validation AUC";
plot.ShowLegend();
plot.SavePng(png, 900, 500);
Console.WriteLine($"curves written to {png} ({r.LossCurve.Count} steps, best selection AUC {r.BestValidationAuc:F4} on the seeded half of the validation rows)");
