using Microsoft.ML.Cora.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>Top-K: CF retrieval of candidates, then the model re-ranks them (the paper's two-stage use of a CF model and an LLM).</summary>
internal static class CoraRecommender
{
    /// <summary>The retrieved candidates of one user, in retrieval order: the rows to re-rank and the CF stage's score of each.</summary>
    internal sealed record Candidates(int UserId, IReadOnlyList<Interaction> Rows, float[] CfScores);

    public static List<CoraRecommendation> Recommend(CoraModel model, int scoringBatchSize, int userId, int k, IReadOnlyList<int>? history, int candidates, bool excludeSeen)
    {
        var c = Retrieve(model, userId, k, history, candidates, excludeSeen);
        return Rank(model, c, model.UsesLlm ? model.Score(c.Rows, scoringBatchSize) : c.CfScores, k);
    }

    /// <summary>The first stage: the CF model retrieves <paramref name="candidates"/> items the user has not seen.</summary>
    public static Candidates Retrieve(CoraModel model, int userId, int k, IReadOnlyList<int>? history, int candidates, bool excludeSeen)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        if (candidates < k) throw new ArgumentOutOfRangeException(nameof(candidates), candidates, $"candidates must be at least k ({k}).");
        model.Users.TryGet(userId, out var profile);
        var liked = history?.Where(i => i != 0).ToArray() ?? model.Users.Liked(userId);
        var seen = new HashSet<int>(liked);
        if (excludeSeen && profile is not null) seen.UnionWith(profile.Seen);
        var cf = model.Cf;
        var pool = cf.ItemIds.Select(i => (int)i).Where(i => model.Items.Contains(i) && !(excludeSeen && seen.Contains(i))).ToArray();
        if (pool.Length == 0) return new(userId, Array.Empty<Interaction>(), Array.Empty<float>());
        // The CF model's own score of every candidate (for a user it never saw, its cold-start score); it retrieves, unless the
        // user is unknown to it: then popularity among the training users retrieves, and the scores shown stay the model's (a
        // count is not a logit).
        float[] cfScores = cf.ScoreRows(pool.Select(i => new Interaction(userId, i, false, 0, true, liked)).ToList());   // SASRec reads the history
        float[] retrieval = cfScores;
        if (!(cf.KnowsUser(userId) || (cf is CollaborativeFiltering.SasRec && liked.Length > 0)))   // SASRec reads any user's history
        {
            var popularity = model.Users.Popularity();
            retrieval = pool.Select(i => (float)popularity.GetValueOrDefault(i)).ToArray();
        }
        var top = pool.Select((item, i) => (Item: item, Cf: cfScores[i], Retrieval: retrieval[i]))
            .OrderByDescending(x => x.Retrieval).ThenBy(x => x.Item).Take(candidates).ToList();
        return new(userId, top.Select(x => new Interaction(userId, x.Item, false, 0, true, liked)).ToList(), top.Select(x => x.Cf).ToArray());
    }

    /// <summary>The second stage: the <paramref name="k"/> best candidates by <paramref name="scores"/> (one per candidate row).</summary>
    public static List<CoraRecommendation> Rank(CoraModel model, Candidates c, float[] scores, int k) =>
        // Equal scores keep the retrieval order (an unknown user's cold-start scores are often all equal).
        c.Rows.Select((row, i) => (item: row.ItemId, cfScore: c.CfScores[i], score: scores[i], retrieved: i))
            .OrderByDescending(x => x.score).ThenBy(x => x.retrieved).Take(k)
            .Select((x, r) => new CoraRecommendation
            {
                UserId = c.UserId, Rank = r + 1, ItemId = x.item, Title = model.Items.Title(x.item), Score = x.score,
                Probability = CoraTransformer.Sigmoid(x.score), CfScore = x.cfScore,
            }).ToList();
}
