namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Declares an option once, on the property that holds it: its command-line flag, its help text and its range. The range is what
/// <see cref="OptionChecks.Declared"/> checks; the <c>cora</c> tool builds its flags, their help and their defaults from these
/// declarations and names the flag in every error about the property. The default is the property's initial value.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class OptionAttribute : Attribute
{
    /// <summary>Declares the property as option <paramref name="flag"/> (e.g. "--lr") with this help text.</summary>
    public OptionAttribute(string flag, string help) { Flag = flag; Help = help; }

    /// <summary>The command-line flag, e.g. <c>--lr</c>.</summary>
    public string Flag { get; }
    /// <summary>What the option does and how to choose it (one or two sentences).</summary>
    public string Help { get; }
    /// <summary>Smallest allowed value (none when NaN).</summary>
    public double Min { get; set; } = double.NaN;
    /// <summary>Largest allowed value (none when NaN).</summary>
    public double Max { get; set; } = double.NaN;
    /// <summary>Whether <see cref="Min"/> itself is excluded (e.g. a learning rate must be above 0).</summary>
    public bool MinExclusive { get; set; }
}
