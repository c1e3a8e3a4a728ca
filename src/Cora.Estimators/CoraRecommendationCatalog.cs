using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Cora.CollaborativeFiltering;

namespace Microsoft.ML.Cora;

/// <summary>Cora's trainers and evaluator.</summary>
public sealed class CoraRecommendationCatalog
{
    internal MLContext Context { get; }
    /// <summary>Cora's trainers: <c>Trainers.Cora(...)</c>.</summary>
    public CoraTrainers Trainers { get; }
    internal CoraRecommendationCatalog(MLContext ml) { Context = ml; Trainers = new CoraTrainers(ml); }

    /// <summary>
    /// AUC, UAUC (CoLLM's definition) and log loss (bits, as ML.NET; also in nats), overall and split into warm rows (user and
    /// item known to the model's CF stage, <see cref="CollaborativeModels.IsWarm"/>) and cold rows. <paramref name="model"/> is the Cora
    /// transformer or any transformer chain that contains one (what Fit of a pipeline or Model.Load returns).
    /// </summary>
    public RecommendationMetrics Evaluate(IDataView scored, ITransformer model, string labelColumnName = CoraTrainer.Defaults.LabelColumnName,
        string scoreColumnName = CoraColumns.Score)
    {
        var cora = CoraTransformer.Find(model);
        var s = scored.Schema;
        DataViewSchema.Column Col(string name, string what) => s.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(scored), $"Cora.Evaluate: the scored data has no {what} column '{name}'.");
        var cols = new[] { Col(labelColumnName, "label"), Col(scoreColumnName, "score"), Col(cora.Columns.UserId, "user id"), Col(cora.Columns.ItemId, "item id") };
        // Where the ids were mapped to keys in place, the hidden originals tell unseen users (key 0) apart.
        using var cur = scored.GetRowCursor(cols.Concat(new[] { CoraRows.RawBehind(s, cols[2]), CoraRows.RawBehind(s, cols[3]) }.OfType<DataViewSchema.Column>()));
        var label = CoraRows.LabelGetter(cur, cols[0]);
        var score = cur.GetGetter<float>(cols[1]);
        var user = CoraRows.IdGetter(cur, cols[2], cora.Columns.UserTexts, keyZeroIsUnknown: true);
        var item = CoraRows.IdGetter(cur, cols[3], cora.Columns.ItemTexts);
        var scores = new List<float>(); var labels = new List<bool>(); var users = new List<int>(); var warm = new List<bool>();
        bool l = false; float sc = 0; int u = 0, i = 0;
        while (cur.MoveNext())
        {
            label(ref l); score(ref sc); user(ref u); item(ref i);
            scores.Add(sc); labels.Add(l); users.Add(u); warm.Add(CollaborativeModels.IsWarm(cora.Model.Cf, u, i));
        }
        return Metrics.Evaluate(scores, labels, users, warm);
    }
}
