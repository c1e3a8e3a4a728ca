namespace Microsoft.ML.Cora.Runtime;

/// <summary>Checks shared by the option records.</summary>
internal static class OptionChecks
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

    /// <summary>
    /// Every declared range (<see cref="OptionAttribute"/>) that a property of <paramref name="options"/> breaks, named
    /// <paramref name="prefix"/> + the property's name. Null values (meaning "the default") are not checked.
    /// </summary>
    public static IEnumerable<OptionError> Declared(object options, string prefix = "")
    {
        foreach (var prop in options.GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (prop.GetCustomAttributes(typeof(OptionAttribute), false) is not [OptionAttribute a]) continue;
            if (double.IsNaN(a.Min) && double.IsNaN(a.Max)) continue;
            string name = prefix + prop.Name;
            switch (prop.GetValue(options))
            {
                case int or long:
                    long v = Convert.ToInt64(prop.GetValue(options), System.Globalization.CultureInfo.InvariantCulture);
                    long min = double.IsNaN(a.Min) ? long.MinValue : (long)Math.Ceiling(a.Min + (a.MinExclusive ? 1e-9 : 0));
                    foreach (var e in double.IsNaN(a.Max) ? AtLeast(name, v, min) : Between(name, v, min, (long)a.Max)) yield return e;
                    break;
                case double d:
                    foreach (var e in Finite(name, d, double.IsNaN(a.Min) ? double.MinValue : a.Min, double.IsNaN(a.Max) ? double.MaxValue : a.Max, a.MinExclusive)) yield return e;
                    break;
            }
        }
    }

    /// <summary>Throws one <see cref="ArgumentException"/> listing every problem (the option names first).</summary>
    public static void ThrowIfAny(IEnumerable<OptionError> errors, string paramName = "options")
    {
        var list = errors.ToList();
        if (list.Count > 0) throw new ArgumentException(string.Join(" ", list.Select(e => e.ToString())), paramName);
    }
}
