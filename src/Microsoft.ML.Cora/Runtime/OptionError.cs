namespace Microsoft.ML.Cora.Runtime;

/// <summary>A problem with an option value: the option's name and what is wrong (and how to fix it).</summary>
public sealed record OptionError(string Option, string Problem)
{
    /// <summary>"Option: problem".</summary>
    public override string ToString() => $"{Option}: {Problem}";
}
