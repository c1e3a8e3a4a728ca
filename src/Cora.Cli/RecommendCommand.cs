using System.CommandLine;
using Microsoft.ML.Cora;

namespace Cora.Cli;

/// <summary><c>cora recommend</c>: top-K for a user through <c>CoraTransformer.Recommend</c> (CF retrieval, then re-rank).</summary>
internal static class RecommendCommand
{
    public static Command Create(CliContext c)
    {
        var loaded = ModelOptions.Create();
        var model = loaded.Model;
        var user = new Option<int>("--user") { Description = "User id.", Required = true };
        var top = Cli.Int("--top", CoraDefaults.RecommendTop, "How many items to print.", 1);
        var candidates = Cli.Int("--candidates", CoraDefaults.RecommendCandidates, "Candidates retrieved with the CF stage before re-ranking.", 1);
        var includeSeen = new Option<bool>("--include-seen") { Description = "Also recommend items the user was seen with in training." };
        var data = Cli.HistoryOption();
        var cmd = new Command("recommend", "Retrieve candidates with the CF stage, re-rank them with the model, print titles and probabilities.") { model, user, top, candidates, includeSeen, data };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd); cmd.Options.Add(loaded.Llm);
        cmd.SetAction(p =>
        {
            int u = p.GetValue(user), k = p.GetValue(top);
            int cand = Math.Max(k, p.GetValue(candidates));
            var (_, t) = loaded.Load(p, dev.Get(p));
            if (!t.Model.Cf.KnowsUser(u) && !t.Model.Users.TryGet(u, out _))
                throw Cli.UnknownUser(u);
            var history = Cli.History(p.GetValue(data), u);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var ranked = t.Recommend(u, k, history, cand, excludeSeen: !p.GetValue(includeSeen));
            c.Out.WriteLine($"top {ranked.Count} for user {u} (from {cand} CF candidates, re-ranked by {t.Model.Options.Method}, {sw.Elapsed.TotalMilliseconds:F0} ms)");
            foreach (var r in ranked) c.Out.WriteLine($"{r.Probability:F4}  {r.ItemId,6}  {r.Title}");
            return 0;
        });
        return cmd;
    }
}
