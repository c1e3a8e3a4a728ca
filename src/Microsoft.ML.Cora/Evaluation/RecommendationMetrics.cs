namespace Microsoft.ML.Cora.Evaluation;

/// <summary>Metrics of a scored set overall and split into warm rows (the CF stage knows both the user and the item) and cold rows.</summary>
public sealed record RecommendationMetrics(MetricSet Overall, MetricSet Warm, MetricSet Cold);
