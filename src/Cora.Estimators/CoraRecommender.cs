using Microsoft.ML.Cora.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>One recommended item: its rank (1 = best), id, title, the model's score and probability, and the CF score that retrieved it.</summary>
public sealed class CoraRecommendation
{
    public int UserId { get; set; }
    public int Rank { get; set; }
    public int ItemId { get; set; }
    public string Title { get; set; } = "";
    public float Score { get; set; }
    public float Probability { get; set; }
    public float CfScore { get; set; }
}

/// <summary>Top-K: CF retrieval of candidates, then the model re-ranks them (the paper's two-stage use of a CF model and an LLM).</summary>
internal static class CoraRecommender
{
    public static List<CoraRecommendation> Recommend(CoraModel model, int scoringBatchSize, int userId, int k, IReadOnlyList<int>? history, int candidates, bool excludeSeen)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
        if (candidates < k) throw new ArgumentOutOfRangeException(nameof(candidates), candidates, $"candidates must be at least k ({k}).");
        model.Users.TryGet(userId, out var profile);
        var liked = history?.Where(i => i != 0).ToArray() ?? model.Users.Liked(userId);
        var seen = new HashSet<int>(liked);
        if (excludeSeen && profile is not null) seen.UnionWith(profile.Seen);
        var cf = model.Cf;
        var pool = cf.ItemIds.Select(i => (int)i).Where(i => model.Items.Contains(i) && !(excludeSeen && seen.Contains(i))).ToArray();
        if (pool.Length == 0) return new();
        float[] cfScores;
        if (cf.KnowsUser(userId) || (cf is Collaborative.SasRec && liked.Length > 0))   // SASRec reads any user's history
            cfScores = cf.ScoreRows(pool.Select(i => new Interaction(userId, i, false, 0, true, liked)).ToList());   // SASRec reads the history
        else
        {
            // A user the CF stage never saw has no embedding: retrieve by popularity among the training users instead.
            var popularity = model.Users.Popularity();
            cfScores = pool.Select(i => (float)popularity.GetValueOrDefault(i)).ToArray();
        }
        var top = pool.Zip(cfScores).OrderByDescending(x => x.Second).ThenBy(x => x.First).Take(candidates).ToList();
        var rows = top.Select(x => new Interaction(userId, x.First, false, 0, true, liked)).ToList();
        var scores = model.UsesLlm ? model.Score(rows, scoringBatchSize) : top.Select(x => x.Second).ToArray();
        return top.Select((x, i) => (item: x.First, cfScore: x.Second, score: scores[i]))
            .OrderByDescending(x => x.score).ThenBy(x => x.item).Take(k)
            .Select((x, r) => new CoraRecommendation
            {
                UserId = userId, Rank = r + 1, ItemId = x.item, Title = model.Items.Title(x.item), Score = x.score,
                Probability = CoraTransformer.Sigmoid(x.score), CfScore = x.cfScore,
            }).ToList();
    }
}
