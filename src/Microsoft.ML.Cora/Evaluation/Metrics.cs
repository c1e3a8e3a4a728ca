namespace Microsoft.ML.Cora.Evaluation;

/// <summary>The paper's metrics: AUC over all rows, UAUC (the mean of per-user AUCs, users with one row or one class skipped) and log loss.</summary>
public static class Metrics
{
    /// <summary>
    /// Area under the ROC curve by the rank-sum (Mann-Whitney) formula with tied scores sharing their average
    /// rank, as scikit-learn's roc_auc_score. NaN when only one class is present.
    /// </summary>
    public static double Auc(IReadOnlyList<float> scores, IReadOnlyList<bool> labels)
    {
        int n = scores.Count;
        if (n != labels.Count) throw new ArgumentException("scores and labels differ in length.");
        RequireFinite(scores);
        long pos = labels.Count(l => l), neg = n - pos;
        if (pos == 0 || neg == 0) return double.NaN;
        var order = Enumerable.Range(0, n).OrderBy(i => scores[i]).ToArray();
        double rankSumPos = 0;
        int k = 0;
        while (k < n)
        {
            int j = k;
            while (j + 1 < n && scores[order[j + 1]] == scores[order[k]]) j++;
            double avgRank = (k + j) / 2.0 + 1;                 // 1-based average rank of the tie group
            for (int t = k; t <= j; t++) if (labels[order[t]]) rankSumPos += avgRank;
            k = j + 1;
        }
        return (rankSumPos - pos * (pos + 1) / 2.0) / ((double)pos * neg);
    }

    /// <summary>
    /// UAUC as CoLLM defines it: the unweighted mean over users of each user's AUC. Users with a single row or
    /// with one class only are skipped (and counted in <c>skipped</c>).
    /// </summary>
    public static (double uauc, int counted, int skipped) Uauc(IReadOnlyList<float> scores, IReadOnlyList<bool> labels, IReadOnlyList<int> users)
    {
        var groups = Enumerable.Range(0, scores.Count).GroupBy(i => users[i]);
        double sum = 0;
        int counted = 0, skipped = 0;
        foreach (var g in groups)
        {
            var idx = g.ToArray();
            if (idx.Length < 2) { skipped++; continue; }
            double a = Auc(idx.Select(i => scores[i]).ToArray(), idx.Select(i => labels[i]).ToArray());
            if (double.IsNaN(a)) { skipped++; continue; }
            sum += a; counted++;
        }
        return (counted == 0 ? double.NaN : sum / counted, counted, skipped);
    }

    /// <summary>Refuses NaN or infinite scores: a metric over them would look like an ordinary number.</summary>
    public static void RequireFinite(IReadOnlyList<float> scores)
    {
        for (int i = 0; i < scores.Count; i++)
            if (!float.IsFinite(scores[i]))
                throw new InvalidDataException($"Score {i} is {scores[i]}: the model produced non-finite values, so no metric is computed. Retrain (a lower learning rate) or check the model file.");
    }

    /// <summary>Mean binary cross-entropy of sigmoid(score) in nats, computed stably from logits.</summary>
    public static double LogLoss(IReadOnlyList<float> logits, IReadOnlyList<bool> labels)
    {
        if (logits.Count == 0) return double.NaN;
        RequireFinite(logits);
        double s = 0;
        for (int i = 0; i < logits.Count; i++)
        {
            double z = logits[i], y = labels[i] ? 1 : 0;
            s += Math.Max(z, 0) - z * y + Math.Log(1 + Math.Exp(-Math.Abs(z)));
        }
        return s / logits.Count;
    }

    /// <summary>AUC, UAUC and log loss of scores (logits) against labels, with each row's user for UAUC.</summary>
    public static MetricSet Compute(IReadOnlyList<float> logits, IReadOnlyList<bool> labels, IReadOnlyList<int> users)
    {
        var (u, c, sk) = Uauc(logits, labels, users);
        return new MetricSet(Auc(logits, labels), u, LogLoss(logits, labels), logits.Count, c, sk);
    }

    /// <summary>
    /// Overall metrics and the same split by <paramref name="warm"/>. Cora's one definition of a warm row: the model's CF stage
    /// knows both the user and the item (<c>CollaborativeModels.IsWarm</c>); a data file's not_cold column is used only when asked for.
    /// </summary>
    public static RecommendationMetrics Evaluate(IReadOnlyList<float> logits, IReadOnlyList<bool> labels, IReadOnlyList<int> users, IReadOnlyList<bool> warm)
    {
        MetricSet Sub(bool w)
        {
            var idx = Enumerable.Range(0, logits.Count).Where(i => warm[i] == w).ToArray();
            return Compute(idx.Select(i => logits[i]).ToArray(), idx.Select(i => labels[i]).ToArray(), idx.Select(i => users[i]).ToArray());
        }
        return new RecommendationMetrics(Compute(logits, labels, users), Sub(true), Sub(false));
    }
}
