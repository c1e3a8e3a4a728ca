namespace Microsoft.ML.Cora.Llm;

/// <summary>Llama 3.1 rotary frequency scaling parameters.</summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);
