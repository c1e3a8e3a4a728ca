namespace Microsoft.ML.Cora.Runtime;

/// <summary>Training produced a non-finite loss or gradient; the message names the step and the fix.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>A divergence, described by <paramref name="message"/> (step and fix).</summary>
    public TrainingDivergedException(string message) : base(message) { }
}
