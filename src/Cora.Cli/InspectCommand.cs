using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;

namespace Cora.Cli;

/// <summary><c>cora inspect</c>: does a CoRA model's generator use the collaborative signal (<see cref="GeneratorProbe"/>)?</summary>
internal static class InspectCommand
{
    public static Command Create(CliContext c)
    {
        var model = Cli.Req("--model", "A CoRA model zip written by 'cora train --method cora'.");
        var data = Cli.Req("--data", "Interactions to probe with (TSV), e.g. the validation split.");
        var rows = Cli.Int("--rows", 1000, "Probe the first N rows of --data.", 2);
        var json = new Option<string?>("--json") { Description = "Write {rows, spread, user_shuffled, items_zeroed} here." };
        var cmd = new Command("inspect", "Probe a CoRA model's query generator: how far its per-sample weights A_b spread and move when users are " +
                                         "shuffled or items zeroed (near 0 = the generator ignores the CF embeddings).") { model, data, rows, json };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var outputs = FileChecks.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, new[] { p.GetValue(model), p.GetValue(data) });
            if (outputs.Count > 0) throw new UsageException(string.Join(" ", outputs.Select(x => $"{x.name}: {x.problem}")));
            var (_, t) = Cli.Load(p.GetValue(model)!, dev.Get(p));
            if (t.Model.Options.Method != CoraMethod.Cora)
                throw new UsageException($"--model: {p.GetValue(model)} is a {t.Model.Options.Method} model; only cora models have a query generator to inspect.");
            var probeRows = InteractionTsv.Read(p.GetValue(data)!, p.GetValue(rows));
            if (probeRows.Count < 2) throw new UsageException($"--data: {p.GetValue(data)} has {probeRows.Count} rows; the probe needs at least 2.");
            var r = GeneratorProbe.Measure(t.Model, probeRows);
            c.Out.WriteLine($"generator probe on {r.Rows} rows (mean L2 distance between unit-norm A_b, 0 to 2; a trained CoRA-MF model reads about 0.2, a collapsed generator 0.001 or less):");
            c.Out.WriteLine($"  spread around the mean A   {r.Spread:F4}");
            c.Out.WriteLine($"  users shuffled             {r.UserShuffled:F4}");
            c.Out.WriteLine($"  items zeroed               {r.ItemsZeroed:F4}");
            if (p.GetValue(json) is { } j)
                Cli.WriteJson(j, new JsonObject { ["rows"] = r.Rows, ["spread"] = r.Spread, ["user_shuffled"] = r.UserShuffled, ["items_zeroed"] = r.ItemsZeroed });
            return 0;
        });
        return cmd;
    }
}
