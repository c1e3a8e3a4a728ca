using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Cli;

/// <summary><c>cora predict</c>: score given items for a user, best first.</summary>
internal static class PredictCommand
{
    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create();
        var model = loaded.Model;
        var user = new Option<int>("--user") { Description = "User id.", Required = true };
        var items = Cli.Req("--items", "Comma-separated item ids to score.");
        var data = Cli.HistoryOption();
        var cmd = new Command("predict", "Score items for a user, best first.") { model, user, items, data };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            var ids = p.GetValue(items)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out var v) && v >= 0 ? v : throw new UsageException($"--items: '{s}' is not an item id.")).ToArray();
            var (ml, t) = loaded.Load(p, dev.Get(p));
            int u = p.GetValue(user);
            if (!t.Model.Cf.KnowsUser(u))
                throw Cli.UnknownUser(u);
            foreach (var i in ids) if (t.Model.UsesLlm && !t.Model.Items.Contains(i)) throw new ArgumentException($"item {i} is not in the model's item catalog.");
            var history = Cli.History(p.GetValue(data), u) ?? t.Model.Users.Liked(u);
            var view = ml.Data.LoadFromEnumerable(ids.Select(i => new CoraInput { UserId = u, ItemId = i, History = history }));
            var probs = t.Transform(view).GetColumn<float>("Probability").ToArray();
            c.Out.WriteLine($"user {u} ({history.Length} history items)");
            foreach (var (id, prob) in ids.Zip(probs).OrderByDescending(x => x.Second))
                c.Out.WriteLine($"{prob:F4}  {id,6}  {(t.Model.Items.Contains(id) ? t.Model.Items.Title(id) : "")}");
            return 0;
        });
        return cmd;
    }
}
