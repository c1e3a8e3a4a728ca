// Validation AUC against the optimiser step for several runs of the quality sweep, in one PNG (docs/results.md's finalists).
//
//   dotnet run tools/sweep/plot.cs -- OUT.png RUN [RUN...]
//
// RUN is a run's name under $CORA_SWEEP_DIR (default ../runs beside the checkout, where tools/sweep/run.sh keeps them) or a path
// to a run's folder; its curve is what the run's checkpoint recorded (RUN/ckpt/state.json: each validation on the selection
// sample). Compare runs made with the same seed and --max-valid-rows: the seed picks the selection sample.
#:project ../../src/Cora.Plots/Cora.Plots.csproj
#:property PublishAot=false

using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Plots;

if (args.Length < 2)
    return Fail("usage: dotnet run tools/sweep/plot.cs -- OUT.png RUN [RUN...]");
string output = Path.GetFullPath(args[0]);
if (!output.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
    return Fail($"'{args[0]}' must name a .png file to write.");
if (!Directory.Exists(Path.GetDirectoryName(output)))
    return Fail($"the folder of '{args[0]}' does not exist; create it first.");

string root = Path.GetFullPath(Path.Combine(AppContext.GetData("EntryPointFileDirectoryPath") as string ?? ".", "..", ".."));
string sweep = Environment.GetEnvironmentVariable("CORA_SWEEP_DIR") is { Length: > 0 } d ? d : Path.Combine(root, "..", "runs");
var runs = new List<(string, List<(int, double)>)>();
foreach (string run in args[1..])
{
    string folder = Directory.Exists(run) ? run : Path.Combine(sweep, run);
    string state = Path.Combine(folder, "ckpt", "state.json");
    if (!File.Exists(state))
        return Fail($"{state} is missing: '{run}' is not a run of tools/sweep/run.sh (set CORA_SWEEP_DIR to where the runs are).");
    JsonNode? json;
    try { json = JsonNode.Parse(File.ReadAllText(state)); }
    catch (System.Text.Json.JsonException e) { return Fail($"{state}: not JSON ({e.Message})."); }
    if (json?["valid"] is not JsonArray valid || valid.Count == 0)
        return Fail($"{state} holds no validation points (\"valid\"); the run validated no step.");
    var points = new List<(int, double)>();
    foreach (var p in valid)
    {
        if (p is not JsonArray { Count: 2 } pair)
            return Fail($"{state}: \"valid\" holds {p?.ToJsonString() ?? "null"}, not a [step, AUC] pair.");
        points.Add(((int)pair[0]!, (double)pair[1]!));
    }
    string label = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
    var best = points.MaxBy(p => p.Item2);
    Console.WriteLine(FormattableString.Invariant($"{label}: {points.Count} validations, steps {points[0].Item1}-{points[^1].Item1}, best AUC {best.Item2:F4} at step {best.Item1}"));
    runs.Add((label, points));
}
TrainingPlot.SaveValidationCurves(runs, output, "validation AUC (1,000-row selection sample of the CoLLM ML-1M valid split)");
Console.WriteLine($"wrote {output}: {runs.Count} runs");
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine($"tools/sweep/plot.cs: {message}");
    return 2;
}
