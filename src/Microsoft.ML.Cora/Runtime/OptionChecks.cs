namespace Microsoft.ML.Cora.Runtime;

/// <summary>A problem with an option value: the option's name and what is wrong (and how to fix it).</summary>
public sealed record OptionError(string Option, string Problem)
{
    public override string ToString() => $"{Option}: {Problem}";
}

/// <summary>Checks shared by the option records.</summary>
public static class OptionChecks
{
    public static IEnumerable<OptionError> AtLeast(string name, long value, long min) =>
        value < min ? new[] { new OptionError(name, $"{value} is out of range; it must be at least {min}.") } : Array.Empty<OptionError>();

    public static IEnumerable<OptionError> Between(string name, long value, long min, long max) =>
        value < min || value > max ? new[] { new OptionError(name, $"{value} is out of range; use {min} to {max}.") } : Array.Empty<OptionError>();

    public static IEnumerable<OptionError> Finite(string name, double value, double min, double max, bool minExclusive = false)
    {
        if (double.IsNaN(value) || double.IsInfinity(value)) return new[] { new OptionError(name, $"{value} is not a finite number.") };
        if (value < min || (minExclusive && value == min) || value > max)
            return new[] { new OptionError(name, $"{value} is out of range; use a value {(minExclusive ? "above" : "from")} {min} to {max}.") };
        return Array.Empty<OptionError>();
    }

    /// <summary>Throws one <see cref="ArgumentException"/> listing every problem (the option names first).</summary>
    public static void ThrowIfAny(IEnumerable<OptionError> errors, string paramName = "options")
    {
        var list = errors.ToList();
        if (list.Count > 0) throw new ArgumentException(string.Join(" ", list.Select(e => e.ToString())), paramName);
    }
}
