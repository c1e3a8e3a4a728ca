using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.IO;

namespace Cora.Cli;

/// <summary><c>cora evaluate</c>: AUC, UAUC, log loss overall and warm/cold, and scoring speed.</summary>
internal static class EvaluateCommand
{
    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create();
        var model = loaded.Model;
        var data = Cli.Req("--data", "Interactions to score (TSV).");
        var items = new Option<string?>("--items") { Description = "Item titles: checked against the data and added to the model's catalog (new items)." };
        var json = new Option<string?>("--json") { Description = "Write {auc, uauc, logloss (bits), logloss_nats, rows, warm, cold, rows_per_s} here." };
        var batch = Cli.Int("--batch-size", 0, "Rows per LLM forward when scoring (0 = the model's own setting).");
        var warmFromData = new Option<bool>("--warm-from-data") { Description = "Split warm/cold by the data's not_cold column instead of the model's CF stage." };
        var cmd = new Command("evaluate", "Score a data file and print AUC, UAUC, log loss, row counts, overall and warm/cold, and rows/s.") { model, data, items, json, batch, warmFromData };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            var outputs = FileChecks.CheckOutputs(new[] { ("--json", p.GetValue(json)) }, new[] { p.GetValue(model), p.GetValue(data), p.GetValue(items) });
            if (outputs.Count > 0) throw new UsageException(string.Join(" ", outputs.Select(x => $"{x.name}: {x.problem}")));
            var (ml, t) = loaded.Load(p, dev.Get(p), p.GetValue(batch));
            var rows = InteractionTsv.Read(p.GetValue(data)!, notice: c.Out.WriteLine);
            if (p.GetValue(items) is { } itemsPath)
            {
                var catalog = ItemCatalog.Read(itemsPath);
                Cli.CheckTitles(rows, catalog, itemsPath);
                t.AddItems(catalog.Titles.Where(kv => !t.Model.Items.Contains(kv.Key)));
            }
            if (t.Model.UsesLlm) Cli.CheckTitles(rows, t.Model.Items, p.GetValue(model)! + " (its item catalog; pass --items to add new items)");
            var sw = Stopwatch.StartNew();
            var metrics = Cli.EvaluateRows(ml, t, rows, p.GetValue(warmFromData));
            double rowsPerSecond = rows.Count / sw.Elapsed.TotalSeconds;
            Cli.Print(c.Out, metrics);
            c.Out.WriteLine($"scored {rows.Count} rows in {sw.Elapsed.TotalSeconds:F1} s ({rowsPerSecond:F0} rows/s, batch {t.ScoringBatchSize}, {t.Model.Device})");
            if (p.GetValue(json) is { } j) Cli.WriteJson(j, metrics, new JsonObject { ["rows_per_s"] = rowsPerSecond, ["device"] = t.Model.Device.ToString() });
            return 0;
        });
        return cmd;
    }
}
