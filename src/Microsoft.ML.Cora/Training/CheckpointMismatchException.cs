namespace Microsoft.ML.Cora.Training;

/// <summary>A checkpoint folder holds another run's state (data, options, model or LLM differ).</summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>A mismatch, described by <paramref name="message"/> (what differs and how to start afresh).</summary>
    public CheckpointMismatchException(string message) : base(message) { }
}
