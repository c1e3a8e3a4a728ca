using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Methods;

namespace Cora.Cli;

/// <summary><c>cora inspect</c>: where a model's CF stage's ranking comes from (<see cref="CfProbe"/>) and, for CoRA, whether its generator
/// uses the collaborative signal (<see cref="GeneratorProbe"/>).</summary>
internal static class InspectCommand
{
    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create(ModelOptions.DefaultHelp + " Any method; the generator probe needs --method cora.");
        var model = loaded.Model;
        var data = Cli.Req("--data", "Interactions to probe with (TSV), e.g. the validation split.");
        var rows = Cli.Int("--rows", 1000, "Probe the first N rows of --data.", 2);
        var json = new Option<string?>("--json") { Description = "Write {rows, cf: {auc, uauc, item_only_auc, ..., user_rank, item_rank}, spread, user_shuffled, items_zeroed} here." };
        var cmd = new Command("inspect", "Probe a model: its CF stage's AUC split into what the items alone say and what each user's vector adds; for " +
                                         "CoRA, how far the query generator's per-sample weights A_b spread and move when users are shuffled or items " +
                                         "zeroed (near 0 = the generator ignores the CF embeddings).") { model, data, rows, json };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            var outputs = FileChecks.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, new[] { p.GetValue(model), p.GetValue(data) });
            if (outputs.Count > 0) throw new UsageException(string.Join(" ", outputs.Select(x => $"{x.name}: {x.problem}")));
            // The rows first (cheap), then the model: a bad --data is reported before the model is loaded.
            var probeRows = InteractionTsv.Read(p.GetValue(data)!, p.GetValue(rows), c.Out.WriteLine);
            if (CfProbe.RowsProblem(probeRows) is { } problem) throw new UsageException($"--data: {p.GetValue(data)} gives {problem}.");
            var (_, t) = loaded.Load(p, dev.Get(p));
            var cf = CfProbe.Measure(t.Model.Cf, probeRows);
            c.Out.WriteLine($"CF stage ({t.Model.Cf.Kind}) on {cf.Rows} rows, u.i = m.i + (u - m).i with m the rows' mean user (AUC / UAUC):");
            c.Out.WriteLine($"  u.i, the CF score          {cf.Full.Auc:F4} / {cf.Full.Uauc:F4}");
            c.Out.WriteLine($"  m.i, the items alone       {cf.ItemOnly.Auc:F4} / {cf.ItemOnly.Uauc:F4}");
            c.Out.WriteLine($"  (u - m).i, the user's own  {cf.Personal.Auc:F4} / {cf.Personal.Uauc:F4}");
            c.Out.WriteLine($"  users' RMS distance from m {cf.UserSpread:F4} of |m|");
            c.Out.WriteLine($"  effective rank, users      {cf.UserRank:F1} of {t.Model.Cf.EmbeddingDim} (directions they vary in, by variance; 1 = one direction dominates)");
            c.Out.WriteLine($"  effective rank, items      {cf.ItemRank:F1} of {t.Model.Cf.EmbeddingDim}");
            var o = new JsonObject
            {
                ["rows"] = cf.Rows,
                ["cf"] = new JsonObject
                {
                    ["kind"] = t.Model.Cf.Kind, ["auc"] = cf.Full.Auc, ["uauc"] = cf.Full.Uauc, ["item_only_auc"] = cf.ItemOnly.Auc, ["item_only_uauc"] = cf.ItemOnly.Uauc,
                    ["personal_auc"] = cf.Personal.Auc, ["personal_uauc"] = cf.Personal.Uauc, ["user_spread"] = cf.UserSpread, ["user_rank"] = cf.UserRank, ["item_rank"] = cf.ItemRank,
                },
            };
            if (t.Model.Options.Method == CoraMethod.Cora)
            {
                var r = GeneratorProbe.Measure(t.Model, probeRows);
                c.Out.WriteLine($"generator probe on {r.Rows} rows (mean L2 distance between unit-norm A_b, 0 to 2; a trained CoRA-MF model reads about 0.2, a collapsed generator 0.001 or less):");
                c.Out.WriteLine($"  spread around the mean A   {r.Spread:F4}");
                c.Out.WriteLine($"  users shuffled             {r.UserShuffled:F4}");
                c.Out.WriteLine($"  items zeroed               {r.ItemsZeroed:F4}");
                o["spread"] = r.Spread; o["user_shuffled"] = r.UserShuffled; o["items_zeroed"] = r.ItemsZeroed;
            }
            else c.Out.WriteLine($"no generator probe: only the cora method has a query generator (this model: {t.Model.Options.Method}).");
            if (p.GetValue(json) is { } j) Cli.WriteJson(j, o);
            return 0;
        });
        return cmd;
    }
}
